# Copyright (c) mlma contributors
#
# 040_dump_restore.pl
#	  pg_dump + pg_restore into a fresh database round-trips mlma's
#	  configuration, state and history (the tables registered with
#	  pg_extension_config_dump and their sequences), the trigger of an
#	  attached table, and ingestion goes on correctly afterwards.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION mlma;
	SELECT mlma.create_stream('dump/eager', batch_size => 8, labels => '{"city":"london"}');
	SELECT mlma.create_stream('dump/sched', batch_size => 8, check_mode => 'scheduled',
							  reference_policy => 'rolling');
	SELECT mlma.create_stream('dump/season', batch_size => 4, season_length => 8, method => 'dm');
	SELECT count(mlma.observe_loss(s, 1 + (i % 5) + CASE WHEN i > 24 AND s = 'dump/eager' THEN 20 ELSE 0 END))
	  FROM generate_series(1, 45) i, unnest(ARRAY['dump/eager', 'dump/sched', 'dump/season']) s;
	SELECT count(*) FROM mlma.run_checks();
	SELECT mlma.request_retrain('dump/season', 'by hand');
	SELECT * FROM mlma.claim_retrain('worker-1');
	CREATE TABLE forecasts (zone text, at timestamptz, actual float8, predicted float8);
	SELECT mlma.attach('forecasts', 'zone', 'actual', 'predicted', 'at', '{"batch_size": 5}');
	INSERT INTO forecasts SELECT 'dump/zone', '2026-01-01'::timestamptz + i * interval '15 min', i % 3, 1
	  FROM generate_series(1, 12) i;
});

# a fingerprint of every mlma table
my $fingerprint = q{
	SELECT string_agg(c.relname || '=' || (xpath('/row/f/text()',
		query_to_xml(format('SELECT md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''')) AS f FROM mlma.%I t', c.relname),
					 false, true, '')))[1]::text, ' ' ORDER BY c.relname)
	  FROM pg_class c
	 WHERE c.relnamespace = 'mlma'::regnamespace AND c.relkind = 'r'
};
my $before = $node->safe_psql('src', $fingerprint);
my $counts = $node->safe_psql('src', q{
	SELECT (SELECT count(*) FROM mlma.streams) || '/' || (SELECT count(*) FROM mlma.checks)
		|| '/' || (SELECT count(*) FROM mlma.retrain_requests) || '/' || (SELECT count(*) FROM mlma.batches)
		|| '/' || (SELECT count(*) FROM mlma.observations)});
like($counts, qr{^4/\d+/\d+/\d+/\d+$}, "source has streams, checks, requests, batches ($counts)");

my $dump = $node->basedir . '/src.dump';
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ], 'pg_restore into a fresh database');

is($node->safe_psql('dst', $fingerprint), $before, 'every mlma table round-trips exactly');
is($node->safe_psql('dst', q{SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM mlma.stream_status}),
	$node->safe_psql('src', q{SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM mlma.stream_status}),
	'stream_status is the same');

# ingestion goes on: the attached table's trigger is back, ids do not collide
$node->safe_psql('dst', q{
	INSERT INTO forecasts VALUES ('dump/zone', '2026-01-02', 7, 1);
	SELECT mlma.observe_loss('dump/sched', 2);
});
is($node->safe_psql('dst', q{SELECT observations FROM mlma.stream_status WHERE name = 'dump/zone'}),
	'13', 'the restored trigger records new rows of the attached table');
is($node->safe_psql('dst', q{SELECT count(*) FROM forecasts}), '13', 'the user table restored once');
my $maxreq = $node->safe_psql('dst', q{SELECT max(request_id) FROM mlma.retrain_requests});
my $claimed = $node->safe_psql('dst', q{
	SELECT s.name FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
	 WHERE r.status = 'claimed'});
isnt($claimed, '', "a request claimed before the dump is still claimed ($claimed)");
$node->safe_psql('dst', q{SELECT mlma.complete_retrain((SELECT request_id FROM mlma.retrain_requests WHERE status = 'claimed'), 'v2')});
is($node->safe_psql('dst', qq{SELECT state || ' ' || model_version FROM mlma.stream_status WHERE name = '$claimed'}),
	'warming v2', 'it completes after the restore and the new version warms');
$node->safe_psql('dst', q{SELECT mlma.request_retrain('dump/zone')});
cmp_ok($node->safe_psql('dst', q{SELECT max(request_id) FROM mlma.retrain_requests}), '>', $maxreq,
	'sequences were restored: a new request gets a new id');

$node->stop;
done_testing();
