# Copyright (c) mlma contributors
#
# 050_upgrade.pl
#	  The upgrade path: CREATE EXTENSION mlma VERSION '0.1.0' followed by
#	  ALTER EXTENSION mlma UPDATE must give the same catalog as a fresh
#	  install of the default version: the same member objects, function
#	  signatures, bodies and settings, columns, constraints, indexes, views,
#	  privileges and config-dump registrations.  With one version installed
#	  the update is a no-op; every later version needs an upgrade script
#	  sql/mlma--A--B.sql, and this test fails when one is missing or differs.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

my $catalog = q{
	SELECT string_agg(line, E'\n' ORDER BY line) FROM (
		SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc)
			   || ' ' || p.provolatile::text || p.prosecdef::text || ' '
			   || coalesce(array_to_string(p.proconfig, ','), '')
			   || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text)
									 FROM unnest(p.proacl) a), '') AS line
		  FROM pg_proc p WHERE p.pronamespace = 'mlma'::regnamespace
		UNION ALL
		SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
			   || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
		  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		 WHERE c.relnamespace = 'mlma'::regnamespace
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
		  FROM pg_constraint WHERE connamespace = 'mlma'::regnamespace
		UNION ALL
		SELECT 'index ' || pg_get_indexdef(indexrelid)
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		 WHERE c.relnamespace = 'mlma'::regnamespace
		UNION ALL
		SELECT 'view ' || c.relname || ' ' || md5(pg_get_viewdef(c.oid))
		  FROM pg_class c WHERE c.relnamespace = 'mlma'::regnamespace AND c.relkind = 'v'
		UNION ALL
		SELECT 'acl ' || c.relname || ' ' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text)
														  FROM unnest(c.relacl) a), '')
		  FROM pg_class c WHERE c.relnamespace = 'mlma'::regnamespace
		UNION ALL
		SELECT 'config ' || x::regclass::text
		  FROM pg_extension e, unnest(e.extconfig) x WHERE e.extname = 'mlma'
		UNION ALL
		SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ' ' || md5(d.description)
		  FROM pg_description d
		 WHERE (d.classoid = 'pg_proc'::regclass
				AND d.objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = 'mlma'::regnamespace))
			OR (d.classoid = 'pg_class'::regclass
				AND d.objoid IN (SELECT oid FROM pg_class WHERE relnamespace = 'mlma'::regnamespace))
		UNION ALL
		SELECT 'member ' || pg_describe_object(classid, objid, objsubid)
		  FROM pg_depend
		 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'mlma')
	) s
};

$node->safe_psql('postgres', 'CREATE DATABASE fresh; CREATE DATABASE upgraded');
$node->safe_psql('fresh', 'CREATE EXTENSION mlma');
my $default = $node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'mlma'});
$node->safe_psql('upgraded', q{CREATE EXTENSION mlma VERSION '0.1.0'});
# 0.1.0 data: streams numbered by its sequence and a request (observations
# need the C functions of 0.1.0, which are not installed)
$node->safe_psql('upgraded', q{
	SELECT mlma.create_stream('old/a', batch_size => 4);
	SELECT mlma.create_stream('old/b', batch_size => 4);
	SELECT mlma.request_retrain('old/b', 'before the update');
});
$node->safe_psql('upgraded', 'ALTER EXTENSION mlma UPDATE');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'mlma'}),
	$default, "0.1.0 updates to the default version $default");

my $fresh = $node->safe_psql('fresh', $catalog);
my $upgraded = $node->safe_psql('upgraded', $catalog);
cmp_ok(length($fresh), '>', 1000, 'the catalog fingerprint covers the extension');
is($upgraded, $fresh, 'an updated install has the same catalog as a fresh one');

# the catalog explains itself: every function, table and view has a comment
is($node->safe_psql('fresh', q{
	SELECT string_agg(x, ', ' ORDER BY x) FROM (
		SELECT p.oid::regprocedure::text AS x FROM pg_proc p
		 WHERE p.pronamespace = 'mlma'::regnamespace
		   AND obj_description(p.oid, 'pg_proc') IS NULL
		UNION ALL
		SELECT c.relname FROM pg_class c
		 WHERE c.relnamespace = 'mlma'::regnamespace AND c.relkind IN ('r', 'v')
		   AND obj_description(c.oid, 'pg_class') IS NULL) s}),
	'', 'every function, table and view of mlma has a comment');

# and it works: a stream warms and its first test batch is checked
$node->safe_psql('upgraded', q{
	SELECT mlma.create_stream('upgrade/s', batch_size => 4);
	SELECT count(mlma.observe_loss('upgrade/s', i)) FROM generate_series(1, 8) i;
});
is($node->safe_psql('upgraded', q{SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id) WHERE s.name = 'upgrade/s' AND c.status = 'done'}),
	'1', 'the updated extension monitors');

# streams of 0.1.0 keep their ids and history; new ones get the id derived
# from their name, as on a fresh install
is($node->safe_psql('upgraded', q{
	SELECT string_agg(s.name || '=' || s.stream_id
					  || ' checks ' || (SELECT count(*) FROM mlma.checks c WHERE c.stream_id = s.stream_id)
					  || ' requests ' || (SELECT count(*) FROM mlma.retrain_requests r WHERE r.stream_id = s.stream_id),
					  ', ' ORDER BY s.name)
	  FROM mlma.streams s WHERE s.name LIKE 'old/%'}),
	'old/a=1 checks 0 requests 0, old/b=2 checks 0 requests 1',
	'streams of 0.1.0 keep their ids and requests');
is($node->safe_psql('upgraded', q{
	SELECT stream_id = mlma._derive_stream_id('upgrade/s') FROM mlma.streams WHERE name = 'upgrade/s'}),
	't', 'a stream created after the update has the id derived from its name');
is($node->safe_psql('fresh', q{
	SELECT mlma.create_stream('upgrade/s', batch_size => 4)}),
	$node->safe_psql('upgraded', q{SELECT stream_id FROM mlma.streams WHERE name = 'upgrade/s'}),
	'the same name gets the same id in another database');
$node->safe_psql('upgraded', q{
	SELECT count(mlma.observe_loss('old/a', i)) FROM generate_series(1, 8) i;
	SELECT mlma.complete_retrain(r.request_id, 'v2') FROM mlma.retrain_requests r WHERE r.stream_id = 2;
	SELECT mlma.drop_stream('old/b');
	SELECT mlma.create_stream('old/b', batch_size => 4);
});
is($node->safe_psql('upgraded', q{
	SELECT string_agg(s.name || ' ' || (s.stream_id = mlma._derive_stream_id(s.name))
					  || ' checks ' || (SELECT count(*) FROM mlma.checks c WHERE c.stream_id = s.stream_id),
					  ', ' ORDER BY s.name)
	  FROM mlma.streams s WHERE s.name LIKE 'old/%'}),
	'old/a false checks 1, old/b true checks 0',
	'an old stream goes on with its id; created again it gets the derived id');

# the set path of multi-row statements writes mlma's tables through their
# row types, column by name: the same rows on an updated catalog (whose
# columns may stand in another order) as on a fresh one
my $set_fingerprint = q{
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
		SELECT 'batch ' || s.name || ' ' || b.batch_no || ' ' || b.role || ' ' || b.first_seq
			   || ' ' || b.losses::text || ' ' || b.offsets::text || ' ' || coalesce(b.benchmark_losses::text, '-') AS x
		  FROM mlma.batches b JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'set/%'
		UNION ALL
		SELECT 'check ' || s.name || ' ' || c.batch_no || ' ' || c.status || ' ' || c.check_mode || ' '
			   || coalesce(c.p_value::text, '-') || ' ' || coalesce(c.effect::text, '-') || ' '
			   || coalesce(c.significant::text, '-') || ' ' || coalesce(c.drift::text, '-') || ' '
			   || coalesce(h.source || h.seq_runs::text, '-')
		  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		  LEFT JOIN mlma.reference_history h ON h.reference_id = c.reference_id
		 WHERE s.name LIKE 'set/%'
		UNION ALL
		SELECT 'reference ' || s.name || ' ' || r.source || ' ' || r.losses::text || ' ' || r.end_seq
		  FROM mlma.reference_batches r JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'set/%'
		UNION ALL
		SELECT 'open ' || s.name || ' ' || o.seq || ' ' || o.loss || ' ' || coalesce(o.benchmark_loss::text, '-')
		  FROM mlma.observations o JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'set/%'
		UNION ALL
		SELECT 'queued ' || s.name || ' ' || q.batch_no
		  FROM mlma.check_queue q JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'set/%'
		UNION ALL
		SELECT 'request ' || s.name || ' ' || r.reason || ' ' || r.status
		  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'set/%') f
};
for my $db ('upgraded', 'fresh')
{
	$node->safe_psql($db, q{
		CREATE TABLE set_t (zone text, at timestamptz, predicted float8, bench float8, actual float8);
		SELECT mlma.attach('set_t', 'zone', 'actual', 'predicted', 'at', benchmark_column => 'bench');
		SELECT mlma.create_stream('set/rolling', batch_size => 4, reference_policy => 'rolling');
		SELECT mlma.create_stream('set/scheduled', batch_size => 5, check_mode => 'scheduled');
		SELECT mlma.create_stream('set/benchmark', batch_size => 4, reference_policy => 'benchmark');
		INSERT INTO set_t
		SELECT z, '2024-01-01'::timestamptz + i * interval '1 minute', 10, 10 + i % 3,
			   10 + (i * 7 % 5) + CASE WHEN i > 20 THEN 8 ELSE 0 END
		  FROM unnest(ARRAY['set/rolling', 'set/scheduled', 'set/benchmark']) z,
			   generate_series(1, 31) i
		 ORDER BY i, z;
	});
}
my $set_upgraded = $node->safe_psql('upgraded', $set_fingerprint);
cmp_ok(length($set_upgraded), '>', 1000, 'the set path wrote batches, checks and references');
is($set_upgraded, $node->safe_psql('fresh', $set_fingerprint),
	'a multi-row statement leaves the same rows on an updated catalog as on a fresh one');

$node->stop;
done_testing();
