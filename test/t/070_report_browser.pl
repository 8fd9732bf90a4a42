# Copyright (c) mlma contributors
#
# 070_report_browser.pl
#	  mlma.report() in a real browser.  A small fleet is run through the real
#	  loop (eager and scheduled checks, a completed, a failed and a dismissed
#	  retrain, a pinned reference, a stream with a hostile name and labels);
#	  mlma_reader renders its report; headless Chromium takes a screenshot
#	  (a picture of the expected size with many colours) and dumps the DOM:
#	  the streams, the counts and the flagged batches the database holds are
#	  in the page, the hostile strings are text and injected nothing, the
#	  page loads nothing from the network and logs no console error.
use strict;
use warnings;

use File::Temp qw(tempdir);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $chromium = (grep { -x $_ } qw(/usr/bin/chromium /usr/bin/chromium-browser))[0];
plan skip_all => 'Chromium is not installed (test/deps.sh installs it)' unless $chromium;

my $node = PostgreSQL::Test::Cluster->new('report');
$node->init;
$node->start;

my $hostile = q{<script>alert(1)</script> "q" & 'a'};
(my $hostile_sql = $hostile) =~ s/'/''/g;

$node->safe_psql('postgres', qq{
	CREATE EXTENSION mlma;
	CREATE ROLE viewer LOGIN IN ROLE mlma_reader;
	SELECT mlma.create_stream(s, batch_size => 24, labels => l::jsonb, check_mode => m)
	  FROM (VALUES ('shop/healthy', '{"team":"ops"}', 'eager'),
				   ('shop/drifting', '{"team":"ops"}', 'eager'),
				   ('shop/retrained', '{"team":"ops"}', 'eager'),
				   ('shop/dismissed', '{"team":"ops"}', 'eager'),
				   ('shop/failed', '{"team":"growth"}', 'eager'),
				   ('shop/pinned', '{"team":"growth"}', 'eager'),
				   ('shop/scheduled', '{"team":"growth"}', 'scheduled'),
				   ('$hostile_sql',
					'{"owner":"<img src=x onerror=alert(2)>","x&y":"\\"quoted\\""}', 'eager')) v(s, l, m);
	CREATE FUNCTION pg_temp.feed(lo int, hi int) RETURNS bigint LANGUAGE sql AS \$\$
		SELECT count(mlma.observe_loss(s.name,
				1 + ((x.i * 7919 + (s.stream_id % 100) * 31) % 100) / 100.0
				  + CASE WHEN x.i > 480 AND (s.name IN ('shop/drifting', 'shop/retrained',
						'shop/dismissed', 'shop/failed', 'shop/scheduled') OR s.name LIKE '<%')
						 THEN 2 ELSE 0 END,
				now() - interval '10 days' + x.i * interval '15 minutes'))
		  FROM (SELECT i, s FROM generate_series(lo, hi) i, mlma.streams s
				 ORDER BY i, s.stream_id) x
		  CROSS JOIN LATERAL (SELECT (x.s).*) s
	\$\$;
	SELECT pg_temp.feed(1, 480);
	SELECT count(*) FROM mlma.run_checks();
	SELECT pg_temp.feed(481, 600);
	SELECT count(*) FROM mlma.run_checks();
	SELECT mlma.complete_retrain(r.request_id, 'v2 <new>')
	  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
	 WHERE s.name = 'shop/retrained';
	SELECT mlma.dismiss(r.request_id, '<b>false alarm</b> & promo', true)
	  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
	 WHERE s.name = 'shop/dismissed';
	SELECT mlma.fail_retrain(r.request_id, 'out of memory')
	  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
	 WHERE s.name = 'shop/failed';
	SELECT mlma.pin_reference('shop/pinned', now() - interval '8 days', now() - interval '7 days');
	SELECT pg_temp.feed(601, 940);
	SELECT count(*) FROM mlma.run_checks();
});

my $tmp = tempdir(CLEANUP => 1);
my $html_file = "$tmp/fleet.html";

# mlma_reader renders it
my ($ret, $html, $err) = $node->psql('postgres', 'SELECT mlma.report()',
	extra_params => [ '-U', 'viewer', '-A', '-t', '-X' ]);
is($ret, 0, 'mlma_reader runs report()') or diag($err);
open(my $fh, '>', $html_file) or die "$html_file: $!";
print $fh $html;
close($fh);
cmp_ok(length($html), '>', 20000, 'the report is a page (' . length($html) . ' bytes)');
like($html, qr{^<!DOCTYPE html>.*</html>$}s, 'one HTML document');

# nothing from the network, no script
unlike($html, qr{(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//}i, 'no src or href to another origin');
unlike($html, qr{https?://}i, 'no URL at all');
unlike($html, qr{<script|<link|<img|<iframe|\@import|url\(}i, 'no script, stylesheet, image or import');

# the browser: screenshot and DOM
sub chromium
{
	my @args = @_;
	my $profile = tempdir(DIR => $tmp);
	my ($out, $errout) = ('', '');
	local $ENV{HOME} = $profile;
	IPC::Run::run([ 'timeout', '120', $chromium, '--headless', '--no-sandbox', '--disable-gpu',
		'--no-first-run', '--disable-extensions', '--disable-background-networking',
		"--user-data-dir=$profile", '--enable-logging=stderr', '--v=0',
		@args, "file://$html_file" ], '>', \$out, '2>', \$errout);
	return ($out, $errout);
}

my $png = "$tmp/fleet.png";
my (undef, $shot_log) = chromium('--hide-scrollbars', '--window-size=1280,2000', "--screenshot=$png");
ok(-s $png, 'Chromium took a screenshot') or diag($shot_log);
my $png_info = `/usr/bin/python3 -c '
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
print(im.size[0], im.size[1], len(set(im.getdata())))
' $png 2>&1`;
chomp $png_info;
like($png_info, qr{^1280 2000 \d+$}, "the screenshot is 1280 x 2000 ($png_info)");
my ($colours) = $png_info =~ /(\d+)$/;
cmp_ok($colours // 0, '>', 200, "the screenshot is not blank: $colours distinct colours");

my ($dom, $dom_log) = chromium('--dump-dom', '--virtual-time-budget=2000');
like($dom, qr{id="kpis"}, 'the browser built the page') or diag($dom_log);
unlike($dom_log . $shot_log, qr{CONSOLE|Uncaught|net::ERR}i, 'no console error, no failed load')
	or diag($dom_log);

# the hostile stream name and labels are text, and injected nothing
(my $esc = $hostile) =~ s/&/&amp;/g;
$esc =~ s/</&lt;/g;
$esc =~ s/>/&gt;/g;
like($dom, qr{\Q$esc\E}, 'the hostile stream name shows as text');
like($dom, qr{owner=&lt;img src=x onerror=alert\(2\)&gt;}, 'the hostile label shows as text');
like($dom, qr{x&amp;y="quoted"}, 'a label key with an ampersand and a quoted value show as text');
like($dom, qr{&lt;b&gt;false alarm&lt;/b&gt; &amp; promo}, 'a dismissal note shows as text');
like($dom, qr{v2 &lt;new&gt;}, 'a model version shows as text');
unlike($dom, qr{<script|<img|<b>false|onerror=alert\(2\)>}, 'no injected element in the DOM');

# the database's counts are on the page
my %db = split /\|/, $node->safe_psql('postgres', q{
	SELECT 'streams|' || (SELECT count(*) FROM mlma.streams)
		|| '|checks|' || (SELECT count(*) FROM mlma.checks WHERE status = 'done')
		|| '|flags|' || (SELECT count(*) FROM mlma.checks WHERE drift)
		|| '|retrains|' || (SELECT count(*) FROM mlma.retrain_requests WHERE status = 'completed')
		|| '|dismissals|' || (SELECT count(*) FROM mlma.retrain_requests WHERE status = 'dismissed')
		|| '|failed|' || (SELECT count(*) FROM mlma.retrain_requests WHERE status = 'failed')
		|| '|open|' || (SELECT count(*) FROM mlma.retrain_requests WHERE status IN ('pending', 'claimed'))
});
cmp_ok($db{flags}, '>=', 5, "the fleet has flags ($db{flags})");
for my $k (qw(streams checks flags retrains dismissals failed open))
{
	like($dom, qr{id="k-$k">$db{$k}<}, "the page shows $db{$k} $k");
}

# every stream, and in its section each flagged batch
my @streams = split /\n/, $node->safe_psql('postgres',
	q{SELECT stream_id || '|' || name || '|'
			 || coalesce((SELECT string_agg(c.batch_no::text, ',' ORDER BY c.batch_no)
							FROM mlma.checks c WHERE c.stream_id = s.stream_id AND c.drift), '')
		FROM mlma.streams s ORDER BY stream_id});
is(scalar @streams, 8, 'eight streams');
for my $line (@streams)
{
	my ($id, $name, $flagged) = split /\|/, $line, 3;
	$name =~ s/&/&amp;/g;	# as the DOM serializes text
	$name =~ s/</&lt;/g;
	$name =~ s/>/&gt;/g;
	my ($section) = $dom =~ m{(<section class="stream" id="s$id">.*?</section>)}s;
	ok(defined $section, "stream $name has a section");
	like($section // '', qr{<h3 class="name">\Q$name\E</h3>}, "its name heads it");
	my @want = split /,/, $flagged;
	my @have = ($section // '') =~ m{<circle [^>]*class="m-drift"><title>batch (\d+) }g;
	is(join(',', @have), join(',', @want), "$name: flagged batches on the chart: " . ($flagged || 'none'));
}

# the chart marks the retrain, the dismissal and the pin
like($dom, qr{class="retrain"}, 'a retrain is marked');
like($dom, qr{class="dismissed"><title>dismissed: &lt;b&gt;false alarm}, 'the dismissal is marked');
like($dom, qr{class="pin"><title>pinned reference}, 'the pinned reference is marked');
like($dom, qr{class="pin"><title>accepted reference}, 'the accepted reference is marked');
like($dom, qr{adjusted p [0-9.e-]+ \(p [0-9.e-]+\)}, 'a scheduled check explains its adjusted p-value');

# the labels filter
my $growth = $node->safe_psql('postgres', q{SELECT mlma.report('{"team":"growth"}')});
like($growth, qr{id="k-streams">3<}, 'labels filter: three growth streams');
unlike($growth, qr{shop/healthy}, 'labels filter: an ops stream is not in the page');

# the dashboard views answer for the same fleet
is($node->safe_psql('postgres', q{SELECT sum(checks) = (SELECT count(*) FROM mlma.checks WHERE status = 'done')
	AND sum(flags) = (SELECT count(*) FROM mlma.checks WHERE drift) FROM mlma.fleet_daily}),
	't', 'fleet_daily adds up to the checks and flags');
is($node->safe_psql('postgres', q{SELECT count(*) = (SELECT count(*) FROM mlma.batches)
	AND count(*) FILTER (WHERE decision = 'drift') = (SELECT count(*) FROM mlma.checks WHERE drift)
	FROM mlma.batch_series}), 't', 'batch_series has every closed batch and its decision');
my ($vret) = $node->psql('postgres', 'SELECT count(*) FROM mlma.fleet_daily, mlma.batch_series',
	extra_params => [ '-U', 'viewer' ]);
is($vret, 0, 'mlma_reader reads the views');

# the Grafana dashboard: every query reads only the two views and runs as
# mlma_reader (Grafana's macros expanded)
my $json = do { local $/; open(my $g, '<', 'examples/grafana/mlma-fleet.json') or die $!; <$g> };
my $dash = JSON::PP::decode_json($json);
my @sql = (map({ map { $_->{rawSql} } @{ $_->{targets} } } @{ $dash->{panels} }),
	map { $_->{query} } @{ $dash->{templating}{list} });
cmp_ok(scalar @sql, '>=', 5, scalar(@sql) . ' dashboard queries');
for my $q (@sql)
{
	my @rels = $q =~ /\bmlma\.(\w+)/g;
	is(join(',', grep { $_ ne 'fleet_daily' && $_ ne 'batch_series' } @rels), '',
		'dashboard query reads only the views: ' . (split /\n/, $q)[0]);
	(my $run = $q) =~ s/\$__timeFilter\((\w+)\)/$1 BETWEEN now() - interval '30 days' AND now()/g;
	$run =~ s/\$stream/shop\/drifting/g;
	my ($r, $out, $e) = $node->psql('postgres', "SELECT count(*) FROM ($run) q",
		extra_params => [ '-U', 'viewer', '-A', '-t' ]);
	ok($r == 0 && $out > 0, "and answers as mlma_reader ($out rows)") or diag("$run\n$e");
}

$node->stop;
done_testing();
