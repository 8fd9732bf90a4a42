# Copyright (c) mlma contributors
#
# 075_fleet_schedule_visible.pl
#	  A schedule that does not run cannot go unnoticed: with pg_cron loaded
#	  but connecting over TCP (cron.use_background_workers off) into a
#	  cluster that listens on a Unix socket only, schedule_checks() still
#	  registers the job but warns that pg_cron connects over TCP; while no
#	  round runs, fleet_status shows the oldest waiting check getting older
#	  and no last round; one run_checks() clears both and is logged in
#	  mlma.rounds.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('visible');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = off
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE EXTENSION mlma;');
$node->safe_psql('postgres', q{
	SELECT mlma.create_stream('vis/a', batch_size => 5, check_mode => 'scheduled');
	SELECT count(mlma.observe_loss('vis/a', 1 + (i % 5) / 5.0)) FROM generate_series(1, 15) i;
});

# scheduling over TCP: the job is registered, with a clear warning
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{SELECT mlma.schedule_checks('* * * * *')});
is($ret, 0, 'schedule_checks registers the job');
like($stdout, qr/^\d+$/, 'and returns its id');
like($stderr, qr/WARNING:  cron\.use_background_workers is off: pg_cron runs the job over a TCP connection/,
	'it warns that pg_cron connects over TCP');
like($stderr, qr/pg_hba\.conf/, 'and names the pg_hba.conf entry it needs');
unlike($stderr, qr/launcher is not running/, 'the pg_cron launcher runs');

# no round has run: the waiting checks get older
my $first = $node->safe_psql('postgres', q{
	SELECT waiting_checks || ' ' || extract(epoch FROM oldest_waiting_check_age)
		   || ' ' || (last_round_at IS NULL) FROM mlma.fleet_status});
my ($waiting, $age1, $noround) = split / /, $first;
is($waiting, '2', 'two checks wait');
is($noround, 'true', 'last_round_at is empty: no round ran');
sleep 3;
my $age2 = $node->safe_psql('postgres',
	q{SELECT extract(epoch FROM oldest_waiting_check_age) FROM mlma.fleet_status});
cmp_ok($age2 - $age1, '>=', 2.5, 'three seconds later the oldest waiting check is three seconds older');

# one round clears it
is($node->safe_psql('postgres', q{SELECT count(*) FROM mlma.run_checks()}), '2',
	'run_checks tests both batches');
is($node->safe_psql('postgres', q{
	SELECT waiting_checks || ' ' || (oldest_waiting_check_age IS NULL)
		   || ' ' || (now() - last_round_at < interval '1 minute') FROM mlma.fleet_status}),
	'0 true true', 'fleet_status: nothing waits, the last round just ran');
is($node->safe_psql('postgres', q{
	SELECT count(*) || ' ' || sum(checks) || ' ' || bool_and(finished_at >= started_at)
	  FROM mlma.rounds}),
	'1 2 true', 'the round is logged in mlma.rounds');
is($node->safe_psql('postgres', q{SELECT mlma.unschedule_checks()}), 't', 'the job is removed');

$node->stop;
done_testing();
