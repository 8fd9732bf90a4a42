-- mlma 0.1.0 -> 0.2.0.  Each piece of this directory holds one change, in
-- name order; together they turn a 0.1.0 catalog into a fresh 0.2.0 one
-- (test/t/050_upgrade.pl proves it).
\echo Use "ALTER EXTENSION mlma UPDATE TO '0.2.0'" to load this file. \quit
