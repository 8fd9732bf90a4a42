# Copyright (c) mlma contributors
#
# 010_agent.pl
#	  mlma-agent against a real cluster: catch-up at start, failures with
#	  their stderr, two agents sharing one queue, a server restart while
#	  commands run, and SIGTERM letting a running command finish.
#
# Every retrain command appends one line per execution to a log file, so the
# test can count how often each request was run.
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

# the installed agent (make install puts it next to pg_config's binaries)
my $agent = $ENV{MLMA_AGENT};
if (!$agent)
{
	my $bindir = `pg_config --bindir`;
	chomp $bindir;
	$agent = -x "$bindir/mlma-agent" ? "$bindir/mlma-agent" : 'mlma-agent';
}

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $execlog = "$tmp/executions.log";

# The retrain command: logs its environment, then behaves by stream name.
my $script = "$tmp/retrain.sh";
open(my $fh, '>', $script) or die "could not write $script: $!";
print $fh <<'SH';
#!/bin/sh
echo "$MLMA_REQUEST_ID|$MLMA_STREAM|$MLMA_STREAM_ID|$MLMA_MODEL_VERSION|$MLMA_REASON|$MLMA_WORKER" >> "$EXECLOG"
case "$MLMA_STREAM" in
	bad*)
		echo "loading data"
		echo "training data missing for $MLMA_STREAM" >&2
		exit 3;;
	quiet*)
		exit 0;;
	hang*)
		sleep 60;;
	noisy*)
		i=0
		while [ $i -lt 100 ]; do
			echo "warning $i: lots of noise on stderr before the real error" >&2
			i=$((i + 1))
		done
		echo "the real error is at the end" >&2
		exit 1;;
esac
sleep "${SLEEP:-0}"
echo "training $MLMA_STREAM"
echo "$MLMA_MODEL_VERSION-next-$MLMA_REQUEST_ID"
echo
SH
close($fh);
chmod 0755, $script;

my $node = PostgreSQL::Test::Cluster->new('agent');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION mlma');
# a role with nothing but mlma_agent, as in production
$node->safe_psql('postgres', 'CREATE ROLE retrainer LOGIN IN ROLE mlma_agent');
my $dsn = $node->connstr('postgres');
my $dsn_agent = "$dsn user=retrainer";

# create streams and raise a manual request for each
sub raise
{
	my @streams = @_;
	my $sql = '';
	foreach my $s (@streams)
	{
		$sql .= "SELECT mlma.create_stream('$s');\n"
		  . "SELECT mlma.request_retrain('$s', 'agent test');\n";
	}
	$node->safe_psql('postgres', $sql);
}

# execution counts per request id, from the command's log
sub executions
{
	my %count;
	return \%count unless -e $execlog;
	open(my $in, '<', $execlog) or die "could not read $execlog: $!";
	while (my $line = <$in>)
	{
		my ($id) = split /\|/, $line;
		$count{$id}++;
	}
	close($in);
	return \%count;
}

sub run_once
{
	my ($name, @args) = @_;
	my ($out, $err) = ('', '');
	local $ENV{EXECLOG} = $execlog;
	my $ok = IPC::Run::run(
		[ $agent, '--dsn', $dsn, '--exec', $script, '--worker-name', $name, '--once', @args ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	return ($? >> 8, $err);
}

sub start_agent
{
	my ($name, @args) = @_;
	my $log = "$tmp/$name.log";
	my $conn = $dsn;
	if (@args && $args[0] eq 'as-retrainer')
	{
		shift @args;
		$conn = $dsn_agent;
	}
	local $ENV{EXECLOG} = $execlog;
	my $h = IPC::Run::start(
		[ $agent, '--dsn', $conn, '--exec', $script, '--worker-name', $name, @args ],
		'<', \undef, '>', "$tmp/$name.out", '2>', $log);
	return ($h, $log);
}

# SIGTERM (unless already sent), then wait up to 30 s for the agent to exit;
# returns its exit code
sub stop_agent
{
	my ($h, $signalled) = @_;
	$h->signal('TERM') unless $signalled;
	if (!wait_ended($h, 30))
	{
		$h->kill_kill;
		return -1;
	}
	$h->finish;
	return $h->result(0);
}

sub slurp
{
	my ($file) = @_;
	return PostgreSQL::Test::Utils::slurp_file($file);
}

sub query
{
	return $node->safe_psql('postgres', $_[0]);
}

# ---- usage --------------------------------------------------------------
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ $agent, '--dsn', $dsn ], '<', \undef, '>', \$out, '2>', \$err);
	is($? >> 8, 2, 'no --exec: exit code 2');
	like($err, qr/--exec/, 'no --exec: the message names the option');

	IPC::Run::run([ $agent, '--exec', 'true', '--lease', '1h', '--timeout', '1h' ],
		'<', \undef, '>', \$out, '2>', \$err);
	is($? >> 8, 2, 'timeout not shorter than the lease: exit code 2');
	like($err, qr/shorter than --lease/, 'timeout vs lease: clear message');

	IPC::Run::run([ $agent, '--exec', 'true', '--workers', 'zero' ],
		'<', \undef, '>', \$out, '2>', \$err);
	is($? >> 8, 2, 'bad --workers: exit code 2');

	IPC::Run::run([ $agent, '--version' ], '<', \undef, '>', \$out, '2>', \$err);
	like($out, qr/^mlma-agent \d+\.\d+\.\d+$/m, '--version prints the version');

	IPC::Run::run([ $agent, '--exec', 'true', '--once', '--dsn', "host=$tmp port=1 connect_timeout=2" ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(30));
	is($? >> 8, 1, '--once without a server: exit code 1');
	like($err, qr/could not connect/, '--once without a server: the log says so');
}

# ---- requests raised while no agent runs are processed when it starts -----
raise(map { "catchup$_" } 1 .. 3);
is(query("SELECT count(*) FROM mlma.retrain_requests WHERE status = 'pending'"),
	'3', 'three pending requests before any agent runs');
{
	my ($rc, $err) = run_once('once-1', '--workers', '2');
	is($rc, 0, '--once agent exits 0 after the pending requests');
	is( query(
			"SELECT string_agg(s.name || ':' || r.status || ':' || r.new_model_version, ',' ORDER BY s.name)
			   FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			  WHERE s.name LIKE 'catchup%'"),
		join(',', map {
			my $id = query("SELECT r.request_id FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name = 'catchup$_'");
			"catchup$_:completed:v1-next-$id"
		} 1 .. 3),
		'each request completed with the version printed last by its command');
	is( query("SELECT s.model_version = r.new_model_version FROM mlma.streams s JOIN mlma.retrain_requests r USING (stream_id) WHERE s.name = 'catchup2'"),
		't', 'the stream now runs the new model version');
	like($err, qr/claimed request \d+ \(stream "catchup1"/, 'the log names the claim');
	like($err, qr/completed request \d+ \(stream "catchup3"\): model version "v1-next-\d+"/,
		'the log names the completion and the version');

	# the command saw the request in its environment
	my $expected = query(
		"SELECT string_agg(r.request_id || '|' || s.name || '|' || r.stream_id || '|' || r.model_version || '|' || r.reason || '|once-1', E'\\n' ORDER BY r.request_id)
		   FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
		  WHERE s.name LIKE 'catchup%'");
	my $seen = join("\n", sort { (split /\|/, $a)[0] <=> (split /\|/, $b)[0] } split /\n/, slurp($execlog));
	is($seen, $expected, 'MLMA_REQUEST_ID, MLMA_STREAM, MLMA_STREAM_ID, MLMA_MODEL_VERSION, MLMA_REASON, MLMA_WORKER');
	is( query("SELECT count(DISTINCT claimed_by) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'catchup%' AND claimed_by = 'once-1'"),
		'1', 'claims carry the worker name');
}

# ---- failing commands leave failed requests with their error --------------
raise('bad1', 'quiet1', 'hang1', 'noisy1');
{
	my $t0 = time;
	my ($rc, $err) = run_once('once-2', '--workers', '4', '--timeout', '1s', '--lease', '30s');
	is($rc, 0, '--once agent exits 0 after failures too');
	cmp_ok(time - $t0, '<', 15, 'the hanging command was killed at its timeout');

	my %r = map { split /=/, $_, 2 } split /\n/, query(
		"SELECT s.name || '=' || r.status || ':' || replace(coalesce(r.error, '<null>'), E'\\n', '\\n')
		   FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
		  WHERE s.name IN ('bad1', 'quiet1', 'hang1', 'noisy1')");
	like($r{bad1}, qr/^failed:command exited with code 3\\ntraining data missing for bad1$/,
		'non-zero exit: failed, with the exit code and the stderr tail (stdout is not part of it)');
	like($r{quiet1}, qr/^failed:command printed no model version$/,
		'exit 0 without output: failed, no model version');
	like($r{hang1}, qr/^failed:command timed out after 1 s$/, 'timeout: failed, timed out');
	like($r{noisy1}, qr/^failed:command exited with code 1\\n\.\.\..*the real error is at the end$/,
		'long stderr: the end is kept');
	my $len = query("SELECT length(r.error) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name = 'noisy1'");
	cmp_ok($len, '<=', 2100, 'long stderr: about 2 kB kept');
	cmp_ok($len, '>=', 2000, 'long stderr: the last 2 kB are all there');
	like($err, qr/failed request \d+ \(stream "bad1"\): command exited with code 3/,
		'the log names the failure');
}

# ---- two agents never run the same request --------------------------------
unlink $execlog;
{
	raise(map { "shared$_" } 1 .. 30);
	local $ENV{SLEEP} = '0.05';
	# as a role that has only mlma_agent
	my ($a1, $log1) = start_agent('agent-a', 'as-retrainer', '--workers', '3', '--poll-interval', '1s');
	my ($a2, $log2) = start_agent('agent-b', 'as-retrainer', '--workers', '3', '--poll-interval', '1s');
	# more requests arrive while both agents listen
	usleep(300_000);
	raise(map { "shared$_" } 31 .. 50);
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) = 50 FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			  WHERE s.name LIKE 'shared%' AND r.status = 'completed'"),
		'two agents completed all 50 requests');
	is( query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'mlma-agent' AND usename = 'retrainer'"),
		'2', 'agents connect with application_name mlma-agent, as the mlma_agent role');
	is(stop_agent($a1), 0, 'agent a exits 0 on SIGTERM');
	is(stop_agent($a2), 0, 'agent b exits 0 on SIGTERM');

	my $count = executions();
	is(scalar(keys %$count), 50, 'every request was executed');
	is(scalar(grep { $_ != 1 } values %$count), 0, 'no request was executed twice');
	is( query("SELECT count(DISTINCT claimed_by) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'shared%'"),
		'2', 'both agents did part of the work');
}

# ---- a server restart mid-run loses nothing ---------------------------------
unlink $execlog;
{
	raise(map { "restart$_" } 1 .. 4);
	local $ENV{SLEEP} = '2';
	my ($h, $log) = start_agent('agent-r', '--workers', '3', '--poll-interval', '1s',
		'--lease', '60s', '--timeout', '30s');
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) = 3 FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			  WHERE s.name LIKE 'restart%' AND r.status = 'claimed'"),
		'three requests running before the restart');
	$node->restart;
	# raised while the agent may still be disconnected
	raise('restart5', 'restart6');
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) = 6 FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			  WHERE s.name LIKE 'restart%' AND r.status = 'completed'"),
		'all six requests completed across the restart');
	is(stop_agent($h), 0, 'agent exits 0 on SIGTERM after the restart');

	my $count = executions();
	is(scalar(keys %$count), 6, 'every request ran');
	is(scalar(grep { $_ != 1 } values %$count), 0, 'none ran twice');
	my $agentlog = slurp($log);
	like($agentlog, qr/connection lost/, 'the agent noticed the restart');
	my @connects = ($agentlog =~ /connected to database/g);
	cmp_ok(scalar(@connects), '>=', 2, 'and reconnected');
}

# ---- SIGTERM lets a running command finish ------------------------------------
unlink $execlog;
{
	raise('term1');
	local $ENV{SLEEP} = '3';
	my ($h, $log) = start_agent('agent-t', '--workers', '1', '--poll-interval', '1s');
	ok( $node->poll_query_until('postgres',
			"SELECT r.status = 'claimed' FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			  WHERE s.name = 'term1'"),
		'the request is claimed');
	# wait until the command itself runs
	for (my $i = 0; $i < 100 && !-s $execlog; $i++)
	{
		usleep(50_000);
	}
	ok(-s $execlog, 'the command started');
	$h->signal('TERM');
	usleep(200_000);
	# raised after SIGTERM: must stay pending
	raise('term2');
	is(stop_agent($h, 1), 0, 'agent exits 0 after the running command finished');
	is( query("SELECT string_agg(s.name || ':' || r.status, ',' ORDER BY s.name)
				 FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
				WHERE s.name LIKE 'term%'"),
		'term1:completed,term2:pending',
		'the running request completed; no new claim after SIGTERM');
	like(slurp($log), qr/received SIGTERM: no new claims, waiting for 1 running command/,
		'the log tells about the shutdown');

	# the next agent picks up what the stopped one left
	local $ENV{SLEEP} = '0';
	my ($rc) = run_once('once-3');
	is($rc, 0, '--once after the stopped agent exits 0');
	is( query("SELECT r.status || ':' || r.claimed_by FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
				WHERE s.name = 'term2'"),
		'completed:once-3', 'the request left pending is run by the next agent');
}

# ---- a second SIGTERM terminates the running commands ------------------------
unlink $execlog;
{
	raise('hang2');
	my ($h, $log) = start_agent('agent-2t', '--workers', '1', '--poll-interval', '1s');
	for (my $i = 0; $i < 100 && !-s $execlog; $i++)
	{
		usleep(50_000);
	}
	ok(-s $execlog, 'the hanging command started');
	$h->signal('TERM');
	usleep(200_000);
	is(stop_agent($h), 0, 'a second SIGTERM: the agent exits 0 without waiting for the command');
	is( query("SELECT r.status || ':' || r.error FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
				WHERE s.name = 'hang2'"),
		'failed:command was terminated because mlma-agent shut down',
		'the terminated command leaves a failed request');
}

# ---- an agent that dies loses nothing: the lease expires, another agent runs it
unlink $execlog;
{
	raise('lost1');
	my ($h, $log);
	{
		local $ENV{SLEEP} = '30';
		($h, $log) = start_agent('agent-k', '--workers', '1', '--lease', '12s', '--timeout', '1.5s');
	}
	for (my $i = 0; $i < 100 && !-s $execlog; $i++)
	{
		usleep(50_000);
	}
	ok(-s $execlog, 'the command of the doomed agent started');
	$h->signal('KILL');	# no chance to report anything
	$h->finish;
	# the orphaned command still runs in its own process group: end it
	my ($pid) = (slurp($log) =~ /started request \d+ \(stream "lost1"\): pid (\d+)/);
	kill('KILL', -$pid) if $pid;
	is( query("SELECT r.status || ':' || r.claimed_by FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
				WHERE s.name = 'lost1'"),
		'claimed:agent-k', 'the dead agent\'s request stays claimed');

	my ($h2, $log2) = start_agent('agent-l', '--workers', '1', '--poll-interval', '1s');
	ok( $node->poll_query_until('postgres',
			"SELECT r.status = 'completed' AND r.claimed_by = 'agent-l'
			   FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			  WHERE s.name = 'lost1'"),
		'after the lease expired another agent claimed and completed it');
	is(stop_agent($h2), 0, 'agent l exits 0');
	is(executions()->{ query("SELECT r.request_id FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name = 'lost1'") },
		2, 'the request ran twice: once in the dead agent, once after the lease');
}

$node->stop;
done_testing();
