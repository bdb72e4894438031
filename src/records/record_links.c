/*-------------------------------------------------------------------------
 *
 * record_links.c
 *	  Dropping what points at deleted records as a foreign key would.
 *
 * crm.drop_record_links runs one statement per kind of link (follow-ups,
 * tags, pins, team entries, attachments ...).  Under repeatable read or
 * serializable, a statement reading with the transaction's snapshot misses a
 * link committed after it (the link's insert locked the record, but a lock
 * of a committed transaction is no conflict), and the link would outlive its
 * record.  As PostgreSQL's ON DELETE CASCADE does, the statement reads the
 * latest committed rows and fails with serialization_failure on one the
 * transaction could not see.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "crm.h"

PG_FUNCTION_INFO_V1(crm_change_record_links);

/* Statements run that change links: the operation log's notes of owners taken before one are stale */
uint64		crm_record_links_changes = 0;

/*
 * crm.change_record_links(statement text, record_type text, ids bigint[]):
 * runs a DELETE or UPDATE of links with $1 the record type and $2 the ids.
 * crm's own (crm.drop_record_links builds the statements from the catalog).
 */
Datum
crm_change_record_links(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {TEXTOID, INT8ARRAYOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	SPIPlanPtr	plan;
	bool		xact_snapshot = IsolationUsesXactSnapshot();

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm.change_record_links needs a statement and a record type")));
	crm_record_links_changes++;
	values[0] = PG_GETARG_DATUM(1);
	values[1] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	if (PG_ARGISNULL(2))
		nulls[1] = 'n';

	SPI_connect();
	plan = SPI_prepare(text_to_cstring(PG_GETARG_TEXT_PP(0)), 2, types);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: could not prepare a link statement: %s", SPI_result_code_string(SPI_result))));
	if (SPI_execute_snapshot(plan, values, nulls,
							 xact_snapshot ? GetLatestSnapshot() : InvalidSnapshot,
							 xact_snapshot ? GetTransactionSnapshot() : InvalidSnapshot,
							 false, true, 0) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("crm: a link statement failed")));
	SPI_finish();
	PG_RETURN_VOID();
}
