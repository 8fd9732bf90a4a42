# Copyright (c) mlma contributors
#
# 060_attach_hardening.pl
#	  The owner of an attached table changes the type of a mapped column
#	  (or drops it, or adds another of the same name): the row trigger checks
#	  every column's type at use time, also through its cached column map, so
#	  the server stays up and the row fails with a clear error
#	  (on_invalid 'error') or is stored and counted as skipped ('skip').
#	  Also: schedule_checks and unschedule_checks by a non-superuser member
#	  of mlma_admin under a real pg_cron.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('harden');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE EXTENSION mlma;');

my $pid = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

# The server is up and was not restarted by a crashed backend.
sub server_alive
{
	my ($what) = @_;
	my ($ret, $out) = $node->psql('postgres', 'SELECT pg_postmaster_start_time()');
	is($ret == 0 ? $out : "down ($ret)", $pid, "$what: the server stayed up");
}

# Each case: a table attached under both on_invalid settings, a good row
# (which fills the trigger's column cache), the ALTER and a row, all in one
# session, then a row in a new session.
my @cases = (
	[ 'zone int', q{ALTER TABLE %s ALTER COLUMN zone TYPE int USING 0}, q{(0, 1, 2)},
	  qr/stream column "zone" must be of type text or varchar, not integer/ ],
	[ 'zone bool', q{ALTER TABLE %s ALTER COLUMN zone TYPE bool USING false}, q{(false, 1, 2)},
	  qr/stream column "zone" must be of type text or varchar, not boolean/ ],
	[ 'zone name', q{ALTER TABLE %s ALTER COLUMN zone TYPE name}, q{('z1', 1, 2)},
	  qr/stream column "zone" must be of type text or varchar, not name/ ],
	[ 'drop zone', q{ALTER TABLE %s DROP COLUMN zone}, q{(1, 2)},
	  qr/column "zone" of attached table "\w+" does not exist/ ],
	[ 'zone re-added as bigint', q{ALTER TABLE %s DROP COLUMN zone; ALTER TABLE %s ADD COLUMN zone bigint},
	  q{(1, 2, 7)}, qr/stream column "zone" must be of type text or varchar, not bigint/ ],
	[ 'actual text', q{ALTER TABLE %s ALTER COLUMN actual TYPE text}, q{('z1', 'x', 2)},
	  qr/column "actual" must be of a numeric type, not text/ ],
	[ 'predicted bool', q{ALTER TABLE %s ALTER COLUMN predicted TYPE bool USING true}, q{('z1', 1, true)},
	  qr/column "predicted" must be of a numeric type, not boolean/ ],
	[ 'time text', q{ALTER TABLE %s ALTER COLUMN at TYPE text}, q{('z1', 1, 2, 'now')},
	  qr/time column "at" must be of type timestamptz or timestamp, not text/ ],
	[ 'benchmark text', q{ALTER TABLE %s ALTER COLUMN bench TYPE text}, q{('z1', 1, 2, now(), 'x')},
	  qr/column "bench" must be of a numeric type, not text/ ],
);

my $n = 0;
foreach my $case (@cases)
{
	my ($what, $alter, $row, $error) = @$case;
	foreach my $mode ('error', 'skip')
	{
		$n++;
		my $t = "t$n";
		$node->safe_psql('postgres', qq{
			CREATE TABLE $t (zone text, actual float8, predicted float8, at timestamptz, bench float8);
			SELECT mlma.attach('$t', 'zone', 'actual', 'predicted', 'at', '{"batch_size": 4}',
							   benchmark_column => 'bench', on_invalid => '$mode');
		});
		my $sql_alter = $alter;
		$sql_alter =~ s/%s/$t/g;
		my $cols = $row =~ /^\(\d+, \d+\)$/ ? '(actual, predicted)'
			: $row =~ /, \d+, 7\)$/ ? '(actual, predicted, zone)'
			: $row =~ /'x'\)$|now\(\), 'x'/ ? '(zone, actual, predicted, at, bench)'
			: $row =~ /'now'\)$/ ? '(zone, actual, predicted, at)'
			: '(zone, actual, predicted)';
		my ($ret, $out, $err) = $node->psql('postgres', qq{
			INSERT INTO $t (zone, actual, predicted) VALUES ('z1', 1, 2);
			$sql_alter;
			INSERT INTO $t $cols VALUES $row;
		});
		server_alive("$what ($mode, cached map)");
		my ($ret2, $out2, $err2) = $node->psql('postgres',
			qq{INSERT INTO $t $cols VALUES $row});
		server_alive("$what ($mode, new session)");
		if ($mode eq 'error')
		{
			isnt($ret2, 0, "$what: on_invalid error fails the row");
			like($err2, $error, "$what: with a clear message");
			like($err2, qr/Row of table "$t", attached to mlma/, "$what: naming the table and the attachment");
			is($node->safe_psql('postgres', "SELECT count(*) FROM $t"), '1',
				"$what: only the good row is stored");
		}
		else
		{
			is($ret2, 0, "$what: on_invalid skip stores the row");
			is($node->safe_psql('postgres', "SELECT count(*) FROM $t"), '3',
				"$what: all three rows are in the table");
			is($node->safe_psql('postgres',
					"SELECT skipped || ' ' || (last_skip_reason ~ 'zone|actual|predicted|at|bench') FROM mlma.attachments WHERE source = '$t'::regclass"),
				'2 true', "$what: both skipped rows are counted on the attachment with the reason");
		}
	}
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM mlma.streams WHERE name NOT IN ('z1')}), '0',
	'no garbage stream was created');
is($node->safe_psql('postgres', q{SELECT sum(n) FROM (SELECT count(*) AS n FROM mlma.observations UNION ALL SELECT sum(cardinality(losses)) FROM mlma.batches) x}),
	$n, 'exactly the good rows were observed');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');

# pg_cron by a non-superuser member of mlma_admin
$node->safe_psql('postgres', q{CREATE ROLE ops LOGIN; GRANT mlma_admin TO ops;});
my ($ret, $job, $err) = $node->psql('postgres', q{SELECT mlma.schedule_checks('*/5 * * * *')},
	extra_params => [ '-U', 'ops' ]);
is($ret, 0, 'schedule_checks works for a non-superuser member of mlma_admin') or diag($err);
like($job, qr/^\d+$/, 'and returns the job id');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE jobname = 'mlma_run_checks_postgres'}),
	'1', 'the job exists');
($ret, my $again) = $node->psql('postgres', q{SELECT mlma.schedule_checks('*/7 * * * *')},
	extra_params => [ '-U', 'ops' ]);
is($again, $job, 'scheduling again changes the same job');
($ret, my $done, $err) = $node->psql('postgres', q{SELECT mlma.unschedule_checks()},
	extra_params => [ '-U', 'ops' ]);
is($done, 't', 'unschedule_checks finds and removes the job of a non-superuser') or diag($err);
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job}), '0', 'no job is left');
($ret, $done) = $node->psql('postgres', q{SELECT mlma.unschedule_checks()},
	extra_params => [ '-U', 'ops' ]);
is($done, 'f', 'unscheduling again returns false');

$node->stop;
done_testing();
