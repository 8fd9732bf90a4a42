# Copyright (c) mlma contributors
#
# 013_notify_two_phase.pl
#	  mlma.notify and two-phase commit (PREPARE TRANSACTION, as Citus uses
#	  for transactions that write several nodes).  With notifications on, a
#	  transaction that raised a retrain request cannot be prepared, and the
#	  user's write in it is lost; with mlma.notify off it prepares and
#	  commits, the request is recorded, and a running mlma-agent, which hears
#	  nothing, claims and completes it by polling.  A dismissal without
#	  NOTIFY mlma_cancel still stops the running command on the agent's next
#	  poll.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MlmaHarness;
use Time::HiRes qw(usleep time);

my $agent = $ENV{MLMA_AGENT};
if (!$agent)
{
	my $bindir = `pg_config --bindir`;
	chomp $bindir;
	$agent = -x "$bindir/mlma-agent" ? "$bindir/mlma-agent" : 'mlma-agent';
}

my $tmp = PostgreSQL::Test::Utils::tempdir;

# The retrain command: "slow*" streams record their pid and wait for a
# minute (the test dismisses them meanwhile); the others print a version.
my $script = "$tmp/retrain.sh";
open(my $fh, '>', $script) or die "could not write $script: $!";
print $fh <<'SH';
#!/bin/sh
case "$MLMA_STREAM" in
	slow*)
		sleep 60 &
		echo "$$ $!" > "$PIDFILE.tmp"
		mv "$PIDFILE.tmp" "$PIDFILE"
		wait
		echo "v-too-late"
		exit 0;;
esac
echo "$MLMA_MODEL_VERSION-next"
SH
close($fh);
chmod 0755, $script;

my $node = PostgreSQL::Test::Cluster->new('two_phase');
$node->init;
$node->append_conf('postgresql.conf', 'max_prepared_transactions = 5');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION mlma;
	CREATE TABLE forecasts (zone text, actual float8, predicted float8);
	SELECT mlma.attach('forecasts', 'zone', 'actual', 'predicted',
					   defaults => '{"batch_size": 4, "min_effect": 0}');
	-- the reference of both zones: one closed batch each
	INSERT INTO forecasts
	SELECT z, 10, 10 + e FROM unnest(ARRAY['zone/on', 'zone/off']) z,
		   unnest('{1, 1.1, 0.9, 1.05}'::float8[]) e;
});

sub query
{
	return $node->safe_psql('postgres', $_[0]);
}

# one transaction whose INSERT closes a drifting batch of the zone, prepared
# and committed as a coordinator does with two-phase commit
sub prepared_drift
{
	my ($zone, $settings) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql('postgres', qq{
		$settings
		BEGIN;
		INSERT INTO forecasts
		SELECT '$zone', 10, 10 + e FROM unnest('{10, 10.2, 9.8, 10.1}'::float8[]) e;
		PREPARE TRANSACTION 'mlma-$zone';
		COMMIT PREPARED 'mlma-$zone';
	}, stdout => \$out, stderr => \$err, on_error_stop => 1);
	return ($rc, $err);
}

sub requests
{
	my ($zone) = @_;
	return query(
		"SELECT coalesce(string_agg(r.reason || ' ' || r.status, ', '), 'none')
		   FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
		  WHERE s.name = '$zone'");
}

# a process is gone once it no longer exists or is a zombie
sub alive
{
	my ($pid) = @_;
	open(my $st, '<', "/proc/$pid/stat") or return 0;
	my $line = <$st>;
	close($st);
	return 0 unless defined $line;
	return $line =~ /^\d+ \(.*\) Z/ ? 0 : 1;
}

# ---- notifications on: PREPARE fails, the user's write is lost ------------
{
	my ($rc, $err) = prepared_drift('zone/on', '');
	isnt($rc, 0, 'mlma.notify on: the transaction cannot be prepared');
	like($err,
		qr/cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY/,
		'with PostgreSQL\'s error about NOTIFY');
	is(query("SELECT count(*) FROM forecasts WHERE zone = 'zone/on'"), '4',
		'and the rows of that INSERT are gone');
	is(requests('zone/on'), 'none', 'no request either');
	is(query("SELECT count(*) FROM pg_prepared_xacts"), '0', 'nothing is left prepared');
}

# ---- notifications off: the agent finds the request by polling ------------
my $log = "$tmp/agent.log";
my $h;
{
	local $ENV{PIDFILE} = "$tmp/pids";
	$h = IPC::Run::start(
		[ $agent, '--dsn', $node->connstr('postgres'), '--exec', $script,
		  '--worker-name', 'poller', '--poll-interval', '1', '--verbose' ],
		'<', \undef, '>', "$tmp/agent.out", '2>', $log);
}
my $deadline = time + 30;
usleep(50_000) while (!-e $log || slurp_file($log) !~ /listening on/) && time < $deadline;
like(slurp_file($log), qr/listening on mlma_retrain/, 'the agent is connected and listening');

{
	my ($rc, $err) = prepared_drift('zone/off', 'SET mlma.notify = off;');
	is($rc, 0, 'mlma.notify off: PREPARE TRANSACTION and COMMIT PREPARED succeed')
	  or diag($err);
	is(query("SELECT count(*) FROM forecasts WHERE zone = 'zone/off'"), '8',
		'the user\'s rows are stored');
	like(requests('zone/off'), qr/^drift (pending|claimed|completed)$/,
		'the drift request is recorded');
	ok( $node->poll_query_until('postgres', q{
			SELECT r.status = 'completed' AND r.new_model_version = 'v1-next'
			  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			 WHERE s.name = 'zone/off'}),
		'the running agent claimed and completed it without a notification');
	unlike(slurp_file($log), qr/notification on mlma_retrain/,
		'the agent heard no notification');
}

# ---- a dismissal without NOTIFY mlma_cancel stops the command -------------
{
	query("SELECT mlma.create_stream('slow/a')");
	my $id = query("SET mlma.notify = off; SELECT mlma.request_retrain('slow/a', 'by hand')");
	$deadline = time + 30;
	usleep(50_000) while !-e "$tmp/pids" && time < $deadline;
	ok(-e "$tmp/pids", 'the retrain command is running');
	my ($shpid, $sleeppid) = split ' ', slurp_file("$tmp/pids");
	ok(alive($shpid), 'the command is alive');

	query("SET mlma.notify = off; SELECT mlma.dismiss($id, 'not needed')");
	my $t0 = time;
	usleep(20_000) while (alive($shpid) || alive($sleeppid)) && time < $t0 + 10;
	ok(!alive($shpid) && !alive($sleeppid),
		'the command is terminated on the next poll');
	usleep(500_000);
	is(query("SELECT status || ' ' || coalesce(new_model_version, '-')
				FROM mlma.retrain_requests WHERE request_id = $id"),
		'dismissed -', 'the request stays dismissed');
	my $text = slurp_file($log);
	unlike($text, qr/notification on mlma_cancel/, 'no cancel notification was heard');
	like($text, qr/request $id \(stream "slow\/a"\) cancelled: dismissed while running; command terminated/,
		'the agent logs the cancellation');
}

$h->signal('TERM');
$h->kill_kill unless wait_ended($h, 30);
$h->finish;
note(slurp_file($log));

$node->stop;
done_testing();
