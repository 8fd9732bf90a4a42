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
              src/core/stats_dist.o src/core/stats_param.o src/core/stats_rank.o src/core/loss.o \
              src/stats_sql.o \
              src/stream.o src/ingest.o src/ingest_bulk.o src/check.o \
              src/fleet.o

# The install script is assembled from the pieces in sql/install (in name
# order), so every concern keeps its own SQL file.  The upgrade script to the
# current version is assembled the same way from sql/upgrade/<from>--<to>/.
# Released install scripts (sql/mlma--0.1.0.sql) are kept as they shipped.
INSTALL_PIECES = $(sort $(wildcard sql/install/*.sql))
UPGRADE_PIECES = $(sort $(wildcard sql/upgrade/0.1.0--0.2.0/*.sql))
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

EXTRA_CLEAN = src/agent/mlma-agent test/unit/stats_unit bench/kernels

include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_PIECES)
	cat /dev/null $^ > $@

sql/$(EXTENSION)--0.1.0--0.2.0.sql: $(UPGRADE_PIECES)
	cat /dev/null $^ > $@

# ---- mlma-agent (libpq client) -------------------------------------------
AGENT_SRCS = $(sort $(wildcard src/agent/*.c))
src/agent/mlma-agent: $(AGENT_SRCS) $(wildcard src/agent/*.h)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $(AGENT_SRCS) -I$(shell $(PG_CONFIG) --includedir) -L$(shell $(PG_CONFIG) --libdir) -lpq

ifneq ($(AGENT_SRCS),)
all: src/agent/mlma-agent
install: install-agent
endif

install-agent: src/agent/mlma-agent
	$(INSTALL_PROGRAM) src/agent/mlma-agent '$(DESTDIR)$(bindir)/mlma-agent'
	ln -sf '$(bindir)/mlma-agent' '$(DESTDIR)/usr/local/bin/mlma-agent' 2>/dev/null || true

.PHONY: test demo bench deps install-agent

deps:
	./test/deps.sh

test:
	./test/run.sh

demo:
	./examples/demo/run.sh

bench:
	./bench/run.sh
