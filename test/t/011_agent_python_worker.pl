# Copyright (c) mlma contributors
#
# 011_agent_python_worker.pl
#	  examples/python_worker.py against a real cluster: it catches up on
#	  requests raised before it started, wakes up on NOTIFY, completes
#	  requests with the version train() returns, and stops on SIGTERM.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MlmaHarness;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $python = '/usr/bin/python3';
my $worker = abs_path(dirname(__FILE__) . '/../../examples/python_worker.py');

if (system("$python -c 'import psycopg2' 2>/dev/null") != 0)
{
	plan skip_all => 'psycopg2 is not available to /usr/bin/python3';
}

my $node = PostgreSQL::Test::Cluster->new('pyworker');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION mlma;
	CREATE ROLE pytrainer LOGIN IN ROLE mlma_agent;
	SELECT mlma.create_stream('py' || g) FROM generate_series(1, 3) g;
	SELECT mlma.request_retrain('py' || g) FROM generate_series(1, 3) g;
});

my $tmp = PostgreSQL::Test::Utils::tempdir;
my $log = "$tmp/worker.log";
my $h = IPC::Run::start(
	[ $python, $worker, '--dsn', $node->connstr('postgres') . ' user=pytrainer',
	  '--name', 'py-1', '--poll-interval', '30' ],
	'<', \undef, '>', "$tmp/worker.out", '2>', $log);

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM mlma.retrain_requests WHERE status = 'completed'"),
	'requests raised before the worker started are completed');

# with a 30 s poll interval, only the notification can wake it in time
$node->safe_psql('postgres', q{
	SELECT mlma.create_stream('py-late');
	SELECT mlma.request_retrain('py-late');
});
my $t0 = time;
ok( $node->poll_query_until('postgres',
		"SELECT status = 'completed' FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
		  WHERE s.name = 'py-late'"),
	'a request raised while it listens is completed');
cmp_ok(time - $t0, '<', 15, 'woken by the notification, not the poll');

is( $node->safe_psql('postgres',
		"SELECT count(*) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
		  WHERE r.status = 'completed' AND r.claimed_by = 'py-1'
		    AND r.new_model_version = r.model_version || '+r' || r.request_id
		    AND s.model_version = r.new_model_version"),
	'4', 'each completed with the version train() returned, now deployed');

$h->signal('TERM');
ok(wait_ended($h, 60), 'the worker stops on SIGTERM');
$h->finish if !$h->pumpable;
$h->kill_kill if $h->pumpable;
like(slurp_file($log), qr/connected, listening on mlma_retrain/, 'the worker logs its connection');

$node->stop;
done_testing();
