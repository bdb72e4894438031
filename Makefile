# crm: a sales CRM as a PostgreSQL 15 extension (PGXS).
#
# The two commands a newcomer needs (both as root on Debian 12):
#   make demo    install what is missing, build, start a demo cluster with a demo company
#   make test    install what is missing, build, run regression + isolation + TAP tests
# Also: make bench (SCALE=0.1 to shrink, BENCH=name for one), make demo-stop, make deps, make check-asan
# (regression, isolation and IM TAP tests against crm built with AddressSanitizer and UBSan).

EXTENSION   = crm
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" crm.control)
MODULE_big  = crm
# src/ by subsystem (docs/architecture.md, "Layout"); src/sql holds the install script's pieces
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*/*.c)))
SHLIB_LINK  = -ljansson -lcurl -licui18n -licuuc -lopencc
PGFILEDESC  = "crm - sales CRM enforced by PostgreSQL"

# Versions (docs/architecture.md, "Versions and updates"): a released version's install
# script is kept as it shipped (crm--0.1.sql).  The version in the making is assembled
# from ordered pieces, src/sql/NN_capability.sql; its update script is what changed in
# the released version's tables (src/sql/updates/FROM--TO.sql), then the pieces added
# since (NEW_PIECES) whole and every function, view, trigger, policy, grant and comment
# of the others, replayed (src/sql/replay.pl).
SQL_PIECES  = $(sort $(wildcard src/sql/*.sql))
RELEASED    = 0.1
NEW_PIECES  = src/sql/26_record_type.sql src/sql/39_status_outcomes.sql src/sql/46_chinese_names.sql \
              src/sql/46_chinese_names_rows.sql src/sql/47_chinese_names.sql src/sql/56_products.sql src/sql/57_opportunities.sql src/sql/58_contracts.sql src/sql/59_payments.sql src/sql/76_import_deals.sql \
              src/sql/91_forecasts.sql src/sql/93_leavers.sql \
              src/sql/95_notification_text.sql src/sql/97_record_types.sql
DATA        = $(EXTENSION)--$(RELEASED).sql
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql $(EXTENSION)--$(RELEASED)--$(EXTVERSION).sql

REGRESS        = $(patsubst sql/%.sql,%,$(filter-out sql/update_%,$(sort $(wildcard sql/*.sql))))
REGRESS_OPTS   = --temp-instance=./tmp_regress --temp-config=test/regress.conf --load-extension=pg_trgm --load-extension=$(EXTENSION)
ISOLATION      = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --temp-instance=./tmp_isolation --temp-config=test/isolation.conf --load-extension=pg_trgm --load-extension=$(EXTENSION)
TAP_TESTS      = 1

# make installcheck UPDATE_FROM=0.1: the regression suite on a database that had crm 0.1
# and was updated (sql/update_0.1.sql runs first and installs it), not a fresh install
ifdef UPDATE_FROM
REGRESS       := update_$(UPDATE_FROM) $(REGRESS)
REGRESS_OPTS  := $(filter-out --load-extension=$(EXTENSION),$(REGRESS_OPTS))
endif

# -Wno-unused-parameter: fmgr (PG_FUNCTION_ARGS) and cache callbacks have fixed signatures
# whose arguments we often do not need.  -Wformat-nonliteral: every message is a literal
# format (PGXS adds -Wformat-security), so no name a user wrote can become one.
PG_CPPFLAGS = -DCRM_VERSION='"$(EXTVERSION)"' -I$(srcdir)/src/core -I$(srcdir)/src/worker
PG_CFLAGS   = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wformat-nonliteral
EXTRA_CLEAN = $(DATA_built) tmp_regress tmp_isolation output_iso

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(PGXS),)
include $(PGXS)

# the worker compares the database's crm with the version it was built as
src/worker/deliver.o: crm.control
# PGXS tracks no header dependencies: a changed struct must rebuild every object
$(OBJS): $(wildcard src/core/*.h src/worker/*.h)

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PIECES) crm.control
	cat $(SQL_PIECES) > $@

$(EXTENSION)--$(RELEASED)--$(EXTVERSION).sql: src/sql/updates/$(RELEASED)--$(EXTVERSION).sql $(SQL_PIECES) src/sql/replay.pl crm.control
	{ sed 's/CREATE EXTENSION $(EXTENSION)/ALTER EXTENSION $(EXTENSION) UPDATE/; s/install script, assembled/update script, assembled/' \
	    src/sql/00_header.sql; \
	  cat $<; perl src/sql/replay.pl $(foreach p,$(NEW_PIECES),--new $(p)) $(filter-out src/sql/00_header.sql,$(SQL_PIECES)); } > $@.tmp && mv $@.tmp $@
else
all install installcheck:
	@echo "PostgreSQL 15 development files are missing: run 'make deps' (make test and make demo do it)." >&2
	@exit 1
endif

.PHONY: deps test demo demo-stop bench check-asan

deps:
	test/deps.sh

test: deps
	$(MAKE) install
	test/run.sh

demo: deps
	$(MAKE) install
	demo/demo.sh start

demo-stop:
	demo/demo.sh stop

bench: deps
	$(MAKE) install
	bench/run.sh

# Installs an instrumented crm, runs the suites, and always reinstalls the plain build:
# an instrumented crm.so cannot load into a server that was not started with ASan.
SANITIZE_COPT = -fsanitize=address,undefined -fno-omit-frame-pointer
check-asan: deps
	$(MAKE) clean
	$(MAKE) install COPT='$(SANITIZE_COPT)'
	test/sanitize.sh; status=$$?; $(MAKE) clean; $(MAKE) install && exit $$status
