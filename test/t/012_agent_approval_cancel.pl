# Copyright (c) mlma contributors
#
# 012_agent_approval_cancel.pl
#	  The approval gate and the cancellation of running retrains, with
#	  mlma-agent against a real cluster: a proposed request is not claimed
#	  until approved; approve_after promotes it by itself; a dismissal while
#	  the command runs terminates the command's process group, the deploy
#	  command never runs and the agent logs one line; the deploy command runs
#	  after a completion only; stream names are escaped in the agent's log.
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
my $execlog = "$tmp/executions.log";

# The retrain command: logs its run; "cancel*" streams record their pids and
# wait for a minute (the test dismisses them meanwhile).
my $script = "$tmp/retrain.sh";
open(my $fh, '>', $script) or die "could not write $script: $!";
print $fh <<'SH';
#!/bin/sh
echo "$MLMA_REQUEST_ID|$MLMA_STREAM" >> "$EXECLOG"
case "$MLMA_STREAM" in
	cancel*)
		sleep 60 &
		echo "$$ $!" > "$PIDFILE.tmp"
		mv "$PIDFILE.tmp" "$PIDFILE"
		wait
		echo "trained anyway"
		echo "v-cancelled"
		exit 0;;
	gone*)
		echo "SELECT mlma.drop_stream(:'s')" | psql -X -q -v s="$MLMA_STREAM" "$DSN" >/dev/null
		echo "v-gone";;
esac
echo "training"
echo "$MLMA_MODEL_VERSION-next-$MLMA_REQUEST_ID"
SH
close($fh);
chmod 0755, $script;

# The deploy command: leaves a marker file with the version it deployed.
my $deploy = "$tmp/deploy.sh";
open($fh, '>', $deploy) or die "could not write $deploy: $!";
print $fh <<'SH';
#!/bin/sh
echo "$MLMA_NEW_MODEL_VERSION" > "$MARKDIR/deployed-$MLMA_REQUEST_ID"
SH
close($fh);
chmod 0755, $deploy;

my $node = PostgreSQL::Test::Cluster->new('approval');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION mlma');
my $dsn = $node->connstr('postgres');

sub query
{
	return $node->safe_psql('postgres', $_[0]);
}

# a stream with the given options whose second batch drifts: one request
sub drifting_stream
{
	my ($name, $opts) = @_;
	query(
		"SELECT mlma.create_stream('$name', batch_size => 4, min_effect => 0$opts);
		 SELECT mlma.observe_loss('$name', l)
		   FROM unnest('{1, 1.1, 0.9, 1.05, 10, 10.2, 9.8, 10.1}'::float8[]) l;");
	return query(
		"SELECT request_id FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
		  WHERE s.name = '$name'");
}

sub executions
{
	my ($id) = @_;
	return 0 unless -e $execlog;
	my $n = 0;
	open(my $in, '<', $execlog) or die "could not read $execlog: $!";
	while (my $line = <$in>)
	{
		$n++ if $line =~ /^\Q$id\E\|/;
	}
	close($in);
	return $n;
}

sub run_once
{
	my ($name) = @_;
	my ($out, $err) = ('', '');
	local $ENV{EXECLOG} = $execlog;
	local $ENV{DSN} = $dsn;
	IPC::Run::run(
		[ $agent, '--dsn', $dsn, '--exec', $script, '--worker-name', $name, '--once' ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	return ($? >> 8, $err);
}

sub start_agent
{
	my ($name, @args) = @_;
	my $log = "$tmp/$name.log";
	local $ENV{EXECLOG} = $execlog;
	local $ENV{PIDFILE} = "$tmp/pids";
	local $ENV{MARKDIR} = $tmp;
	my $h = IPC::Run::start(
		[ $agent, '--dsn', $dsn, '--exec', $script, '--worker-name', $name,
		  '--poll-interval', '0.5', @args ],
		'<', \undef, '>', "$tmp/$name.out", '2>', $log);
	return ($h, $log);
}

sub stop_agent
{
	my ($h) = @_;
	$h->signal('TERM');
	if (!wait_ended($h, 30))
	{
		$h->kill_kill;
		return -1;
	}
	$h->finish;
	return $h->result(0);
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

# ---- a proposed request waits for approve() ------------------------------
{
	my $id = drifting_stream('gate/a', ", approval => 'manual'");
	like($id, qr/^\d+$/, 'a manual-approval stream raised a request');
	is(query("SELECT status FROM mlma.retrain_requests WHERE request_id = $id"),
		'proposed', 'its drift request is proposed');
	is(query("SELECT state || ' ' || open_request_id || ' ' || open_request_status
				FROM mlma.stream_status WHERE name = 'gate/a'"),
		"drift $id proposed", 'stream_status: drift, with the proposed request');

	my ($rc, $err) = run_once('gate-1');
	is($rc, 0, '--once with only a proposed request exits 0');
	is(executions($id), 0, 'the proposed request was not run');
	is(query("SELECT status FROM mlma.retrain_requests WHERE request_id = $id"),
		'proposed', 'the agent did not claim it');

	query("SELECT mlma.approve($id, 'checked the dashboard')");
	is(query("SELECT status || ' ' || note || ' ' || (approved_by = current_user)
				FROM mlma.retrain_requests WHERE request_id = $id"),
		'pending checked the dashboard true', 'approve: pending, note and approver recorded');
	($rc, $err) = run_once('gate-2');
	is($rc, 0, '--once after approval exits 0');
	is(executions($id), 1, 'the approved request was run once');
	is(query("SELECT status || ' ' || new_model_version FROM mlma.retrain_requests
			   WHERE request_id = $id"),
		"completed v1-next-$id", 'and completed with the printed version');
}

# ---- approve_after promotes a proposed request by itself -----------------
{
	my ($h, $log) = start_agent('gate-auto');
	my $id = drifting_stream('gate/b',
		", approval => 'manual', approve_after => interval '2 seconds'");
	usleep(800_000);
	is(query("SELECT status FROM mlma.retrain_requests WHERE request_id = $id"),
		'proposed', 'approve_after: still proposed before the interval passed');
	ok( $node->poll_query_until('postgres',
			"SELECT status = 'completed' FROM mlma.retrain_requests WHERE request_id = $id"),
		'approve_after: a running agent retrained it once the interval passed');
	is(query("SELECT approved_by || ' ' || (approved_at >= requested_at + interval '2 seconds')
				|| ' ' || (claimed_at >= approved_at)
				FROM mlma.retrain_requests WHERE request_id = $id"),
		'approve_after true true', 'approved by approve_after, not before, then claimed');
	is(executions($id), 1, 'approve_after: run once');
	is(stop_agent($h), 0, 'agent stops cleanly');

	# run_checks promotes due requests too
	my $id2 = drifting_stream('gate/c',
		", approval => 'manual', approve_after => interval '1 second'");
	usleep(1_300_000);
	query('SELECT count(*) FROM mlma.run_checks()');
	is(query("SELECT status || ' ' || approved_by FROM mlma.retrain_requests WHERE request_id = $id2"),
		'pending approve_after', 'run_checks promotes a due proposed request');
	query("SELECT mlma.dismiss($id2, 'not needed')");
}

# ---- a dismissal while the command runs terminates it --------------------
{
	my ($h, $log) = start_agent('cancel', '--deploy-command', $deploy);
	query("SELECT mlma.create_stream('cancel/a')");
	my $id = query("SELECT mlma.request_retrain('cancel/a', 'false alarm')");
	my $deadline = time + 30;
	usleep(50_000) while !-e "$tmp/pids" && time < $deadline;
	ok(-e "$tmp/pids", 'the retrain command is running');
	my ($shpid, $sleeppid) = split ' ', slurp_file("$tmp/pids");
	ok(alive($shpid) && alive($sleeppid), 'command and its child are alive');
	is(query("SELECT status FROM mlma.retrain_requests WHERE request_id = $id"),
		'claimed', 'the request is claimed');

	my $t0 = time;
	query("SELECT mlma.dismiss($id, 'a one-day festival, not drift')");
	usleep(10_000) while (alive($shpid) || alive($sleeppid)) && time < $t0 + 10;
	my $elapsed = time - $t0;
	ok(!alive($shpid) && !alive($sleeppid),
		'the command and its process group are gone after the dismissal');
	cmp_ok($elapsed, '<', 1.0,
		sprintf('the command was terminated within a second (%.3f s)', $elapsed));
	diag(sprintf('dismiss -> command terminated: %.3f s', $elapsed));

	# give the agent time to (wrongly) report or deploy
	usleep(1_500_000);
	is(query("SELECT status || ' ' || coalesce(new_model_version, '-')
				FROM mlma.retrain_requests WHERE request_id = $id"),
		'dismissed -', 'the request stays dismissed, no version recorded');
	is(query("SELECT model_version FROM mlma.streams WHERE name = 'cancel/a'"),
		'v1', 'mlma still has the old model version');
	ok(!-e "$tmp/deployed-$id", 'the deploy command never ran');

	# a normal request on the same agent: completed, then deployed
	query("SELECT mlma.create_stream('deploy/ok')");
	my $id2 = query("SELECT mlma.request_retrain('deploy/ok')");
	$deadline = time + 30;
	usleep(50_000) while !-e "$tmp/deployed-$id2" && time < $deadline;
	ok(-e "$tmp/deployed-$id2", 'the deploy command ran after a completion');
	usleep(200_000);
	is(slurp_file("$tmp/deployed-$id2"), "v1-next-$id2\n",
		'the deploy command got MLMA_NEW_MODEL_VERSION');
	is(query("SELECT status || ' ' || new_model_version FROM mlma.retrain_requests WHERE request_id = $id2"),
		"completed v1-next-$id2", 'that request was completed');

	is(stop_agent($h), 0, 'agent stops cleanly');
	my $text = slurp_file($log);
	note($text);
	my @about = grep { /request $id\b.*\bcancelled\b/ } split /\n/, $text;
	is(scalar(@about), 1, 'exactly one log line about the cancellation');
	like($about[0] // '',
		qr/request $id \(stream "cancel\/a"\) cancelled: dismissed while running; command terminated$/,
		'the line says what happened');
	unlike($text, qr/could not (complete|fail)|failed request $id\b|completed request $id\b/,
		'no attempt to complete or fail the dismissed request');
	like($text, qr/deployed model version "v1-next-$id2" of request $id2/,
		'the deployment is logged');
}

# ---- a report refused because the request is gone: one line, no fail ----
{
	# the command drops its own stream (and request) before it succeeds:
	# no cancellation is sent, so complete_retrain is refused
	query("SELECT mlma.create_stream('gone/a')");
	my $id = query("SELECT mlma.request_retrain('gone/a')");
	my ($rc, $err) = run_once('gone');
	note($err);
	is($rc, 0, '--once exits 0');
	is(executions($id), 1, 'the command ran');
	my @about = grep { /request $id\b/ && !/claimed request|started request|command for request/ }
	  split /\n/, $err;
	is(scalar(@about), 1, 'one line about the refused report');
	like($about[0] // '',
		qr/request $id \(stream "gone\/a"\) is no longer open, outcome of its command discarded: retrain request $id does not exist$/,
		'it says the request is no longer open');
	unlike($err, qr/could not (complete|fail)|failed request/, 'no fail_retrain after it');
}

# ---- stream names are escaped in the log ---------------------------------
{
	query("SELECT mlma.create_stream(E'evil\\nmlma-agent[1]: completed request 99\\x1b[31m\\\\x')");
	is(query("SELECT count(*) FROM mlma.streams WHERE name = E'evil\\nmlma-agent[1]: completed request 99\\x1b[31m\\\\x'"),
		'1', 'a stream name with a newline, an ESC and a backslash');
	my $id = query("SELECT mlma.request_retrain(name) FROM mlma.streams WHERE name LIKE 'evil%'");
	my ($rc, $err) = run_once('escape');
	note($err);
	is($rc, 0, '--once exits 0');
	unlike($err, qr/\e/, 'no raw ESC in the log');
	unlike($err, qr/^mlma-agent\[1\]/m, 'no forged log line');
	like($err,
		qr/claimed request $id \(stream "evil\\nmlma-agent\[1\]: completed request 99\\x1b\[31m\\\\x"/,
		'the name appears escaped');
	my @lines = split /\n/, $err;
	is(scalar(grep { !/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [-+]\d{4} mlma-agent\[\d+\]: / } @lines),
		0, 'every log line is a whole agent event');
}

$node->stop;
done_testing();
