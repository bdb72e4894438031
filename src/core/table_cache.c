/*-------------------------------------------------------------------------
 *
 * table_cache.c
 *	  Per-backend caches of crm's configuration tables, rebuilt when any
 *	  session changes one of the tables a cache reads.
 *
 * A cache names its tables and a load function.  A change to one of the
 * tables (committed by any session) reaches every backend as a relcache
 * invalidation, which bumps the cache's generation; the next use loads it
 * again, as the owner of the crm tables with SPI connected and the latest
 * snapshot, into a memory context of its own that the load before it leaves
 * for the next one to reset.  The tables are looked up again after any change of the
 * organisation: the extension may have been dropped and created again, and
 * then the cache's own derived state (a saved plan) must go too.  A cache
 * loaded in a (sub)transaction that aborts loads again: it may hold changes
 * that rolled back before anything announced them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "crm.h"

#define MAX_TABLE_CACHES 8

static CrmTableCache *caches[MAX_TABLE_CACHES];
static int	ncaches = 0;

static void
table_cache_relcache_callback(Datum arg, Oid relid)
{
	for (int i = 0; i < ncaches; i++)
		for (int t = 0; t < caches[i]->ntables; t++)
			if (relid == InvalidOid || relid == caches[i]->relids[t])
			{
				caches[i]->generation++;
				break;
			}
}

/*
 * A cache loaded inside a transaction or subtransaction that aborts may hold
 * its changes, which a statement that failed did not get to announce (the
 * tables' statement triggers announce them at its end): it loads again.
 */
static void
forget_loaded_since(SubTransactionId subid)
{
	for (int i = 0; i < ncaches; i++)
		if (caches[i]->loaded_subid != InvalidSubTransactionId && caches[i]->loaded_subid >= subid)
			caches[i]->generation++;
}

static void
table_cache_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		forget_loaded_since(TopSubTransactionId);
	/* (the next transaction's subtransaction ids start again) */
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_COMMIT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PREPARE)
		for (int i = 0; i < ncaches; i++)
			caches[i]->loaded_subid = InvalidSubTransactionId;
}

static void
table_cache_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		forget_loaded_since(mySubid);
}

/* At module load: the cache follows changes to its tables from then on. */
void
crm_table_cache_register(CrmTableCache *cache)
{
	if (ncaches == 0)
	{
		CacheRegisterRelcacheCallback(table_cache_relcache_callback, (Datum) 0);
		RegisterXactCallback(table_cache_xact_callback, NULL);
		RegisterSubXactCallback(table_cache_subxact_callback, NULL);
	}
	if (ncaches == MAX_TABLE_CACHES)
		elog(ERROR, "crm: too many table caches");
	for (cache->ntables = 0; cache->tables[cache->ntables] != NULL; cache->ntables++)
		if (cache->ntables == CRM_CACHE_MAX_TABLES)
			elog(ERROR, "crm: table cache \"%s\" reads too many tables", cache->name);
	cache->generation = 1;
	caches[ncaches++] = cache;
}

/* The next use loads the cache again. */
void
crm_table_cache_invalidate(CrmTableCache *cache)
{
	cache->generation++;
}

/*
 * How many changes of the cache's tables this backend has heard of: for a
 * cache that also depends on more than its tables (whose entries, until
 * when), and so loads itself.  Looks the tables up again after an org change,
 * and while one is missing.
 */
uint64
crm_table_cache_generation(CrmTableCache *cache)
{
	bool		lookup;

	crm_employee_relid();		/* keeps crm_org_generation current */
	lookup = cache->relids_org_generation != crm_org_generation;
	/* a table missing (an update creates it later) is looked for each time */
	for (int t = 0; t < cache->ntables; t++)
		lookup |= !OidIsValid(cache->relids[t]);
	if (lookup)
	{
		Oid			nsp = get_namespace_oid("crm", false);
		bool		changed = cache->relids_org_generation != crm_org_generation;

		for (int t = 0; t < cache->ntables; t++)
		{
			Oid			relid = get_relname_relid(cache->tables[t], nsp);

			changed |= relid != cache->relids[t];
			cache->relids[t] = relid;
		}
		cache->relids_org_generation = crm_org_generation;
		if (changed)
		{
			cache->generation++;
			if (cache->forget)
				cache->forget();
		}
	}
	return cache->generation;
}

/*
 * Load the cache if a table it reads changed since it was loaded.  The
 * generation is read before loading: a change committed during the load
 * makes the next use load again.
 */
void
crm_table_cache_refresh(CrmTableCache *cache)
{
	uint64		generation = crm_table_cache_generation(cache);
	bool		parallel = IsInParallelMode();
	CrmSwitch	sw;
	MemoryContext old;

	if (cache->loaded == generation && (parallel || !cache->loaded_in_parallel))
		return;

	if (cache->cxt == NULL)
	{
		cache->cxt = AllocSetContextCreate(TopMemoryContext, "crm table cache", ALLOCSET_DEFAULT_SIZES);
		MemoryContextSetIdentifier(cache->cxt, cache->name);
	}
	MemoryContextReset(cache->cxt);
	cache->loaded = 0;

	/*
	 * Read what is committed now, not what the transaction's snapshot sees:
	 * the cache outlives the transaction, and is marked current for every
	 * change this backend has heard of, which an older snapshot (repeatable
	 * read) may not hold.  A parallel operation cannot take a snapshot: its
	 * processes read under the operation's, and the leader loads again after.
	 */
	crm_switch_to_owner(&sw);
	PushActiveSnapshot(parallel ? GetActiveSnapshot() : GetLatestSnapshot());
	SPI_connect();
	old = MemoryContextSwitchTo(cache->cxt);
	cache->load();
	MemoryContextSwitchTo(old);
	SPI_finish();
	PopActiveSnapshot();
	crm_switch_back(&sw);
	cache->loaded = generation;
	cache->loaded_in_parallel = parallel;
	cache->loaded_subid = GetCurrentSubTransactionId();
}

/*
 * Run one of the load's queries; back in the cache's context, where SPI
 * leaves its own, so that what the load keeps of the rows lives there.
 */
void
crm_table_cache_query(CrmTableCache *cache, const char *sql)
{
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: query of cache \"%s\" failed: %s", cache->name, sql)));
	MemoryContextSwitchTo(cache->cxt);
}
