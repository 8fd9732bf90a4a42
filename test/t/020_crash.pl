# Copyright (c) mlma contributors
#
# 020_crash.pl
#	  Crash recovery: several clients load observations into an attached
#	  table and through observe_loss, an agent claims and completes retrain
#	  requests, one transaction stays open, and the server is stopped in
#	  immediate mode in the middle of it.  After the restart every
#	  acknowledged transaction is present, no rolled-back or unfinished one
#	  is, the stream state agrees with the logged history, and ingestion
#	  goes on.
#
# Each client numbers its transactions and prints "client txn" after every
# COMMIT returns, so the test knows exactly which transactions the server
# acknowledged.  Only the last transaction of a client can be in doubt
# (committed on disk but the reply lost in the crash).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MlmaHarness;
use Time::HiRes qw(usleep);

# a die outside a test (psql, IPC::Run) shows its message in the test's
# output, not only in its log file
$SIG{__DIE__} = sub { diag("died: $_[0]") unless $^S; };

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $clients = 4;
my $txns = 20000;			# more than a client can run before the crash
my $batch_size = 8;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', "max_connections = 30\n");
$node->start;
my $dsn = $node->connstr('postgres');

$node->safe_psql('postgres', qq{
CREATE EXTENSION mlma;
-- the user's table: forecasts and actuals, watched by mlma
CREATE TABLE preds (client int NOT NULL, txn int NOT NULL, row_no int NOT NULL,
					stream text NOT NULL, actual float8, predicted float8,
					PRIMARY KEY (client, txn, row_no));
SELECT mlma.attach('preds', 'stream', 'actual', 'predicted', NULL,
				   '{"batch_size": $batch_size}');
-- what each transaction sent through observe_loss
CREATE TABLE direct_log (client int NOT NULL, txn int NOT NULL,
						 stream text NOT NULL, PRIMARY KEY (client, txn));
SELECT mlma.create_stream('crash/direct' || i, batch_size => $batch_size)
  FROM generate_series(0, 2) i;
-- written only by the transaction left open at the crash
SELECT mlma.create_stream('crash/held', batch_size => $batch_size);
});

# One transaction: three rows into the attached table (one stream, created
# on first sight), one observe_loss on another stream.  Attached streams are
# always touched before direct ones, so writers never wait in a cycle.  The
# error grows with the transaction number, so streams drift and requests are
# raised.  Every seventh transaction rolls back.
sub client_script
{
	my ($c, $from, $to, $rollbacks) = @_;
	my $file = "$tmp/client$c-$from.sql";
	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh "\\set ON_ERROR_STOP 1\n\\o /dev/null\n";
	for my $t ($from .. $to)
	{
		my $end = ($rollbacks && $t % 7 == 0) ? 'ROLLBACK' : 'COMMIT';
		print $fh "BEGIN;\n"
		  . "INSERT INTO preds SELECT $c, $t, r, 'crash/attached' || (($c + $t) % 4), "
		  . "r + $t % 5, r + $t % 5 + (random() - 0.5) * (1 + $t / 100.0) "
		  . "FROM generate_series(1, 3) r;\n"
		  . "SELECT mlma.observe_loss('crash/direct' || ($t % 3), "
		  . "abs(random() - 0.5) * (1 + $t / 100.0));\n"
		  . "INSERT INTO direct_log VALUES ($c, $t, 'crash/direct' || ($t % 3));\n"
		  . "$end;\n";
		print $fh "\\echo $c $t\n" if $end eq 'COMMIT';
	}
	close($fh);
	return $file;
}

sub start_psql
{
	my ($name, $file) = @_;
	return IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $dsn, '-f', $file ],
		'<', \undef, '>', "$tmp/$name.out", '2>', "$tmp/$name.err");
}

# wait for every harness to end (they fail when the server goes away)
sub wait_all
{
	my @h = @_;
	my $deadline = time + 60;
	for my $h (@h)
	{
		$h->kill_kill unless wait_ended($h, $deadline - time);
		$h->finish;
	}
}

# the transactions a client saw committed
sub acked
{
	my ($name) = @_;
	my %t;
	open(my $in, '<', "$tmp/$name.out") or return \%t;
	while (<$in>)
	{
		$t{$2} = 1 if /^(\d+) (\d+)$/;
	}
	close($in);
	return \%t;
}

# Invariants between the stream state and the logged history; returns the
# violations, one per line (empty when consistent).
my $consistency = qq{
WITH o AS (SELECT stream_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi
			 FROM mlma.observations GROUP BY stream_id),
	 b AS (SELECT stream_id, count(*) AS n, sum(cardinality(losses)) AS obs
			 FROM mlma.batches GROUP BY stream_id),
	 st AS (SELECT s.stream_id, s.name, s.batch_size, s.reference_size, s.model_version,
				   t.open_start_seq, t.batch_no, t.version_no, t.version_start_seq,
				   coalesce(o.n, 0) AS n_open, o.lo, o.hi,
				   coalesce(b.n, 0) AS n_closed, coalesce(b.obs, 0) AS closed_obs,
				   t.open_start_seq + coalesce(o.n, 0) AS total
			  FROM mlma.streams s JOIN mlma.stream_state t USING (stream_id)
			  LEFT JOIN o USING (stream_id) LEFT JOIN b USING (stream_id)),
	 v AS (
	SELECT name || ': open batch starts at ' || open_start_seq || ', closed batches hold '
		   || closed_obs AS violation
	  FROM st
	 WHERE open_start_seq <> closed_obs
	UNION ALL
	SELECT name || ': batch_no ' || batch_no || ' with ' || n_closed || ' closed, '
		   || n_open || ' open from ' || coalesce(lo::text, '-')
	  FROM st
	 WHERE batch_no <> n_closed + 1 OR n_open >= batch_size
		OR (n_open > 0 AND (lo <> open_start_seq OR hi <> open_start_seq + n_open - 1))
	UNION ALL
	-- closed batches: full (unless closed by a new version) and contiguous
	SELECT 'batch ' || x.stream_id || '/' || x.batch_no || ' not full or not contiguous'
	  FROM (SELECT bt.*, s.batch_size,
				   coalesce(sum(cardinality(bt.losses)) OVER (PARTITION BY bt.stream_id
						ORDER BY bt.batch_no ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before,
				   row_number() OVER (PARTITION BY bt.stream_id ORDER BY bt.batch_no) AS rn
			  FROM mlma.batches bt JOIN mlma.streams s USING (stream_id)) x
	 WHERE (x.role <> 'partial' AND cardinality(x.losses) <> x.batch_size)
		OR x.first_seq <> x.before OR x.batch_no <> x.rn
	UNION ALL
	-- each test batch checked exactly once (eager: done), nothing else checked
	SELECT 'batch ' || bt.stream_id || '/' || bt.batch_no || ' (' || bt.role || ') has '
		   || count(c.check_id) || ' checks'
	  FROM mlma.batches bt
	  LEFT JOIN mlma.checks c ON c.stream_id = bt.stream_id AND c.batch_no = bt.batch_no
	 GROUP BY bt.stream_id, bt.batch_no, bt.role
	HAVING count(c.check_id) <> (bt.role = 'test')::int
		OR bool_or(c.status IS DISTINCT FROM 'done') AND bt.role = 'test'
	UNION ALL
	SELECT 'check ' || c.check_id || ' has no batch'
	  FROM mlma.checks c
	 WHERE NOT EXISTS (SELECT 1 FROM mlma.batches bt
						WHERE bt.stream_id = c.stream_id AND bt.batch_no = c.batch_no)
	UNION ALL
	-- the reference of the live version, once it has reference_size observations
	SELECT t.name || ': reference missing or wrong'
	  FROM st t
	  LEFT JOIN mlma.reference_batches r USING (stream_id)
	 WHERE (t.total - t.version_start_seq >= t.reference_size
			AND (r.stream_id IS NULL OR r.version_no <> t.version_no
				 OR cardinality(r.losses) <> t.reference_size
				 OR r.seqs[1] <> t.version_start_seq))
		OR (t.total - t.version_start_seq < t.reference_size AND r.stream_id IS NOT NULL)
	UNION ALL
	-- requests: drift requests point at a drifting check of their stream,
	-- completed ones account for every new model version
	SELECT 'request ' || q.request_id || ' has no drifting check'
	  FROM mlma.retrain_requests q
	  LEFT JOIN mlma.checks c ON c.check_id = q.check_id
	 WHERE q.reason = 'drift'
	   AND (c.check_id IS NULL OR NOT c.drift OR c.stream_id <> q.stream_id)
	UNION ALL
	SELECT s.name || ': version_no ' || s.version_no || ' after '
		   || (SELECT count(*) FROM mlma.retrain_requests q
				WHERE q.stream_id = s.stream_id AND q.status = 'completed') || ' retrains'
	  FROM st s
	 WHERE s.version_no <> 1 + (SELECT count(*) FROM mlma.retrain_requests q
								 WHERE q.stream_id = s.stream_id AND q.status = 'completed')
		OR s.model_version <> coalesce((SELECT q.new_model_version
										  FROM mlma.retrain_requests q
										 WHERE q.stream_id = s.stream_id
										   AND q.status = 'completed'
										 ORDER BY q.finished_at DESC, q.request_id DESC
										 LIMIT 1), 'v1')
	UNION ALL
	-- the user's rows and the log against the observation counts
	SELECT s.name || ': ' || s.total || ' observations, '
		   || coalesce(p.n, 0) + coalesce(d.n, 0) || ' logged'
	  FROM st s
	  LEFT JOIN (SELECT stream, count(*) AS n FROM preds GROUP BY stream) p ON p.stream = s.name
	  LEFT JOIN (SELECT stream, count(*) AS n FROM direct_log GROUP BY stream) d ON d.stream = s.name
	 WHERE s.total <> coalesce(p.n, 0) + coalesce(d.n, 0))
SELECT coalesce(string_agg(violation, E'\\n'), '') FROM v
};

# ---- load, then crash in the middle of it --------------------------------

my @h;
push @h, start_psql("client$_", client_script($_, 1, $txns, 1)) for 1 .. $clients;

# an agent: claims the oldest request and deploys a new version, in a loop
my $agent_sql = "$tmp/agent.sql";
open(my $fh, '>', $agent_sql) or die;
print $fh "\\set ON_ERROR_STOP 1\n\\o /dev/null\n";
print $fh "SELECT mlma.complete_retrain(request_id, 'v' || request_id) "
  . "FROM mlma.claim_retrain('crash-agent'); SELECT pg_sleep(0.02);\n"
  for 1 .. 20000;
close($fh);
push @h, start_psql('agent', $agent_sql);

# a transaction that is open when the server dies
my $open_sql = "$tmp/open.sql";
open($fh, '>', $open_sql) or die;
print $fh "\\set ON_ERROR_STOP 1\n\\o /dev/null\nBEGIN;\n"
  . "INSERT INTO preds SELECT 99, 1, r, 'crash/open', r, r + 1 FROM generate_series(1, 50) r;\n"
  . "SELECT mlma.observe_loss('crash/held', 1e6);\n"
  . "INSERT INTO direct_log VALUES (99, 1, 'crash/held');\n"
  . "SELECT pg_sleep(300);\nCOMMIT;\n";
close($fh);
push @h, start_psql('open', $open_sql);

# crash once the load is well under way and requests have been completed
$node->poll_query_until('postgres', qq{
	SELECT (SELECT count(*) FROM direct_log) >= 1500
	   AND EXISTS (SELECT 1 FROM mlma.retrain_requests WHERE status = 'completed')
	   AND EXISTS (SELECT 1 FROM pg_stat_activity
				   WHERE query LIKE 'SELECT pg_sleep(300)%')
}) or die 'the load did not get going';
my $before = $node->safe_psql('postgres',
	'SELECT count(*) FROM direct_log');
$node->stop('immediate');
wait_all(@h);

ok(-s "$tmp/client1.err", 'client 1 lost its connection in the crash');
$node->start;

# ---- what survived -------------------------------------------------------

my $present = $node->safe_psql('postgres', q{
	SELECT p.client, p.txn, p.n, d.txn IS NOT NULL
	  FROM (SELECT client, txn, count(*) AS n FROM preds GROUP BY 1, 2) p
	  FULL JOIN direct_log d USING (client, txn)
	 ORDER BY 1, 2});
my %present;
my $torn = 0;
for my $line (split /\n/, $present)
{
	my ($c, $t, $n, $d) = split /\|/, $line;
	$present{$c}{$t} = 1;
	$torn++ if ($n // 0) != 3 || $d ne 't';
}
is($torn, 0, 'every surviving transaction is whole (3 rows and its observe_loss)');

my ($acked_total, $lost, $rolled_back, $beyond, $in_doubt) = (0, 0, 0, 0, 0);
for my $c (1 .. $clients)
{
	my $acked = acked("client$c");
	my @a = sort { $a <=> $b } keys %$acked;
	my $last = @a ? $a[-1] : 0;
	$acked_total += @a;
	$lost += grep { !$present{$c}{$_} } @a;
	for my $t (keys %{ $present{$c} || {} })
	{
		next if $acked->{$t};
		if ($t % 7 == 0) { $rolled_back++; next; }
		# the one transaction after the last acknowledged one may be in doubt
		my $next = $last + 1;
		$next++ if $next % 7 == 0;
		if ($t == $next) { $in_doubt++; } else { $beyond++; }
	}
}
cmp_ok($acked_total, '>=', $before, "clients saw at least $before commits");
is($lost, 0, "all $acked_total acknowledged transactions are present");
is($rolled_back, 0, 'no rolled-back transaction is present');
is($beyond, 0, 'nothing beyond the last acknowledged transaction of a client');
cmp_ok($in_doubt, '<=', $clients, "at most one in-doubt transaction per client ($in_doubt)");
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM preds WHERE client = 99)
		 + (SELECT count(*) FROM direct_log WHERE client = 99)
		 + (SELECT count(*) FROM mlma.streams WHERE name = 'crash/open')}),
	'0', 'the transaction open at the crash left nothing, not even its new stream');

is($node->safe_psql('postgres', $consistency), '',
	'stream state is consistent with the logged history after recovery');
my $summary = $node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM mlma.batches) || ' batches, '
		|| (SELECT count(*) FROM mlma.checks) || ' checks, '
		|| (SELECT count(*) FROM mlma.checks WHERE drift) || ' drifting, '
		|| (SELECT count(*) FROM mlma.retrain_requests WHERE status = 'completed') || ' completed, '
		|| (SELECT count(*) FROM mlma.retrain_requests WHERE status IN ('pending', 'claimed')) || ' open'});
note "after recovery: $summary";
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM mlma.checks WHERE drift'),
	'>', 0, 'the load produced drifting checks');

# ---- ingestion continues -------------------------------------------------

my $batches_before = $node->safe_psql('postgres', 'SELECT count(*) FROM mlma.batches');
@h = ();
push @h, start_psql("after$_", client_script($_, $txns + 1, $txns + 200, 0)) for 1 .. 2;
wait_all(@h);
my $after = 0;
$after += scalar keys %{ acked("after$_") } for 1 .. 2;
is($after, 400, 'both clients committed all 200 transactions after the restart');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM direct_log WHERE txn > $txns"),
	'400', 'and all of them are present');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM mlma.batches'),
	'>', $batches_before, 'batches keep closing');
is($node->safe_psql('postgres', $consistency), '',
	'stream state is still consistent');

# the invariants can fail: one lost batch is caught
like($node->safe_psql('postgres', qq{
	BEGIN;
	DELETE FROM mlma.batches
	 WHERE (stream_id, batch_no) = (SELECT stream_id, batch_no FROM mlma.batches
									 ORDER BY stream_id, batch_no LIMIT 1);
	$consistency;
	ROLLBACK}), qr/open batch starts at/, 'the consistency check catches a lost batch');

$node->stop;
done_testing();
