# Copyright (c) mlma contributors
#
# 030_pg_cron.pl
#	  schedule_checks() under a real pg_cron: the cluster preloads pg_cron
#	  with background workers, run_checks() is scheduled every minute, and
#	  the waiting batches get checked (and flagged) without anyone calling it.
#	  Also: a clear error in a database without pg_cron, and unscheduling.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE EXTENSION mlma;');

# two scheduled streams; 'cron/broken' gets ten times worse after 20 losses
$node->safe_psql('postgres', q{
	SELECT mlma.create_stream('cron/steady', batch_size => 10, check_mode => 'scheduled');
	SELECT mlma.create_stream('cron/broken', batch_size => 10, check_mode => 'scheduled');
	SELECT count(mlma.observe_loss(s, 1 + (i % 7) / 7.0 + CASE WHEN s = 'cron/broken' AND i > 20 THEN 10 ELSE 0 END))
	  FROM generate_series(1, 40) i, unnest(ARRAY['cron/steady', 'cron/broken']) s;
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM mlma.check_queue}),
	'6', 'six closed batches wait for a scheduled check');

my $job = $node->safe_psql('postgres', q{SELECT mlma.schedule_checks('* * * * *')});
like($job, qr/^\d+$/, 'schedule_checks returns the pg_cron job id');
is($node->safe_psql('postgres',
		q{SELECT command || ' @ ' || database FROM cron.job WHERE jobname = 'mlma_run_checks_postgres'}),
	'SELECT count(*) FROM mlma.run_checks() @ postgres',
	'the job runs run_checks() in this database');
is($node->safe_psql('postgres', q{SELECT mlma.schedule_checks('*/2 * * * *')}), $job,
	'scheduling again changes the same job');
$node->safe_psql('postgres', q{SELECT mlma.schedule_checks('* * * * *')});

# pg_cron has minute granularity: wait up to ~2.5 minutes for the round
my $done = 0;
for (my $i = 0; $i < 150; $i++)
{
	$done = $node->safe_psql('postgres',
		q{SELECT count(*) FROM mlma.checks WHERE status = 'done'});
	last if $done == 6;
	sleep 1;
}
is($done, '6', 'pg_cron ran run_checks(): every waiting batch was checked');
is($node->safe_psql('postgres', q{
	SELECT string_agg(s.name || ':' || r.reason || ':' || r.status, ',')
	  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)}),
	'cron/broken:drift:pending', 'the scheduled round raised the retrain request');
my $status = '';
for (my $i = 0; $i < 30; $i++)
{
	$status = $node->safe_psql('postgres', q{
		SELECT status FROM cron.job_run_details
		 WHERE jobid = (SELECT jobid FROM cron.job WHERE jobname = 'mlma_run_checks_postgres')
		 ORDER BY runid LIMIT 1});
	last if $status eq 'succeeded';
	sleep 1;
}
is($status, 'succeeded', 'pg_cron recorded the run as succeeded');

# a database without pg_cron gets a clear error
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION mlma');
my ($ret, $stdout, $stderr) = $node->psql('app', q{SELECT mlma.schedule_checks()});
isnt($ret, 0, 'schedule_checks fails without pg_cron in the database');
like($stderr, qr/pg_cron is not installed in database app/, 'with a clear message');
like($stderr, qr/cron\.database_name/, 'naming where pg_cron runs');

is($node->safe_psql('postgres', q{SELECT mlma.unschedule_checks()}), 't', 'unschedule_checks removes the job');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job}), '0', 'no job is left');

$node->stop;
done_testing();
