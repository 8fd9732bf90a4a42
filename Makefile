# mlma — PGXS build for PostgreSQL 15
#
#   make && make install      build and install the extension and mlma-agent
#   make test                 install test dependencies and run every suite
#   make demo                 run the simulated delivery-platform demo
#   make bench                run the benchmarks

EXTENSION   = mlma
EXTVERSION  = 0.2.0

MODULE_big  = mlma
OBJS        = src/mlma.o \
              src/core/stats_sample.o src/core/stats_dist.o src/core/stats_ks_dist.o \
              src/core/stats_param.o src/core/stats_rank.o src/core/stats_test.o \
              src/core/loss.o src/core/decide.o \
              src/stats_sql.o src/decide_sql.o \
              src/stream.o src/ingest.o src/ingest_direct.o src/ingest_bulk.o src/ingest_set.o src/spi_values.o src/check.o \
              src/requests.o \
              src/fleet.o \
              src/replay.o

# The install script is assembled from the pieces in sql/install (in name
# order), so every concern keeps its own SQL file.  The upgrade script to the
# current version is assembled the same way from sql/upgrade/<from>--<to>/.
# Its last pieces, 89_functions.sql and 90_views.sql, are generated from
# sql/install by sql/upgrade/regenerate.py; privileges (90_roles.sql) and
# comments (95_comments.sql) end both scripts.  Released install scripts
# (sql/mlma--0.1.0.sql) are kept as they shipped.
INSTALL_PIECES = $(sort $(wildcard sql/install/*.sql))
UPGRADE_PIECES = $(sort $(wildcard sql/upgrade/0.1.0--0.2.0/*.sql)) \
                 sql/install/90_roles.sql sql/install/95_comments.sql
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql sql/$(EXTENSION)--0.1.0--0.2.0.sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

REGRESS     = $(sort $(patsubst test/sql/%.sql,%,$(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)
ISOLATION   = $(sort $(patsubst test/specs/%.spec,%,$(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=$(EXTENSION)
TAP_TESTS   = 1
PROVE_TESTS ?= test/t/*.pl

PG_CFLAGS  += -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK += -lm

PG_CONFIG  ?= pg_config
PGXS       := $(shell $(PG_CONFIG) --pgxs)

EXTRA_CLEAN = test/unit/stats_unit bench/kernels

include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_PIECES)
	cat /dev/null $^ > $@

sql/$(EXTENSION)--0.1.0--0.2.0.sql: $(UPGRADE_PIECES)
	cat /dev/null $^ > $@

# ---- mlma-agent (libpq client): its own Makefile in src/agent ---------------
# installed into $(bindir) (pg_config --bindir) only
all: agent
install: install-agent
uninstall: uninstall-agent
clean: clean-agent

agent:
	$(MAKE) -C src/agent PG_CONFIG='$(PG_CONFIG)'

install-agent: agent
	$(MAKE) -C src/agent install PG_CONFIG='$(PG_CONFIG)'

uninstall-agent:
	$(MAKE) -C src/agent uninstall PG_CONFIG='$(PG_CONFIG)'

clean-agent:
	$(MAKE) -C src/agent clean

.PHONY: test demo bench deps agent install-agent uninstall-agent clean-agent

deps:
	./test/deps.sh

test:
	./test/run.sh

demo:
	./examples/demo/run.sh

bench:
	./bench/run.sh
