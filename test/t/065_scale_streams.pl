# Copyright (c) mlma contributors
#
# 065_scale_streams.pl
#	  Ingest at platform scale, with default settings
#	  (max_locks_per_transaction = 64):
#	  - one INSERT ... SELECT of 100 000 rows with distinct new stream names
#		into an attached table, and observe_loss over the same 100 000
#		streams in one transaction, both succeed;
#	  - while a transaction holds 100 000 streams, another session writes
#		another stream without waiting, and pg_locks stays small;
#	  - the backend's mlma memory contexts stay under 16 MB after touching
#		100 000 streams, and mlma.stream_cache_size bounds them.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 100000;
my $node = PostgreSQL::Test::Cluster->new('scale');
$node->init;
$node->append_conf('postgresql.conf', "shared_buffers = 128MB\nmax_wal_size = 2GB\n");
$node->start;

is($node->safe_psql('postgres', 'SHOW max_locks_per_transaction'), '64',
	'default max_locks_per_transaction');

$node->safe_psql('postgres', q{
CREATE EXTENSION mlma;
CREATE TABLE preds (zone text, predicted float8, actual float8);
SELECT mlma.attach('preds', 'zone', 'actual', 'predicted', NULL, '{"batch_size": 4}');
CREATE TABLE mem (label text, bytes bigint);
});

# 1. one statement, 100 000 new stream names
my ($rc, $out, $err) = $node->psql('postgres',
	"INSERT INTO preds SELECT 'big/' || g, 1, 2 FROM generate_series(1, $n) g");
is($rc, 0, 'INSERT ... SELECT of 100 000 new stream names succeeds') or diag($err);
is($node->safe_psql('postgres',
	"SELECT count(*) || ' ' || (SELECT count(*) FROM mlma.observations)
	   FROM mlma.streams WHERE name LIKE 'big/%'"),
	"$n $n", 'one stream and one observation per row');

# 2. observe_loss over the 100 000 streams in one transaction, held open
#	 while another session writes another stream; then the memory bound
my $bg = $node->background_psql('postgres');
$bg->query_safe(q{SET mlma.stream_cache_size = 10000});
$bg->query_safe(q{BEGIN});
$bg->query_safe(
	"SELECT count(mlma.observe_loss('big/' || g, 1)) FROM generate_series(1, $n) g");
pass('observe_loss over 100 000 streams in one transaction');

my $locks = $node->safe_psql('postgres',
	"SELECT count(*) FROM pg_locks WHERE locktype <> 'virtualxid'");
cmp_ok($locks, '<', 100, "pg_locks stays small while 100 000 streams are held ($locks)");

$node->safe_psql('postgres', q{SELECT mlma.create_stream('other', batch_size => 4)});
($rc, $out, $err) = $node->psql('postgres',
	q{SET statement_timeout = '5s'; SELECT count(mlma.observe_loss('other', 1)) FROM generate_series(1, 9)});
is($rc, 0, 'a writer of another stream is not held up') or diag($err);
($rc, $out, $err) = $node->psql('postgres',
	q{SET lock_timeout = '200ms'; SELECT mlma.observe_loss('big/7', 1)});
like($err, qr/lock timeout/, 'a writer of a held stream waits for it');

my $held = $bg->query_safe(
	q{SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name LIKE 'mlma%'});
$held =~ s/\s+//g;
cmp_ok($held, '<', 16 * 1024 * 1024,
	"mlma memory after 100 000 streams, in the transaction: $held bytes");
$bg->query_safe(q{COMMIT});
my $after = $bg->query_safe(
	q{SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name LIKE 'mlma%'});
$after =~ s/\s+//g;
cmp_ok($after, '<', 2 * 1024 * 1024,
	"mlma memory after the transaction ended: $after bytes");

# a smaller cache bound gives a smaller footprint: the bound is what keeps it
$bg->query_safe(q{SET mlma.stream_cache_size = 1000});
$bg->query_safe(
	"SELECT count(mlma.observe_loss('big/' || g, 1)) FROM generate_series(1, 20000) g");
my $small = $bg->query_safe(
	q{SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name LIKE 'mlma%'});
$small =~ s/\s+//g;
cmp_ok($small, '<', $held, "mlma.stream_cache_size = 1000: $small bytes");
$bg->quit;

# every observation is there: 1 per stream from the INSERT, 1 from the
# held transaction, 1 more for the first 20 000
is($node->safe_psql('postgres',
	"SELECT (SELECT count(*) FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
			  WHERE s.name LIKE 'big/%')
		  + coalesce((SELECT sum(cardinality(losses)) FROM mlma.batches b
			  JOIN mlma.streams s USING (stream_id) WHERE s.name LIKE 'big/%'), 0)"),
	2 * $n + 20000, 'no observation lost');

$node->stop;
done_testing();
