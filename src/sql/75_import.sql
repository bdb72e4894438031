-- Importing customers (seeds 003, 004): COPY the file into a staging table
-- shaped like crm.customer_import (a temporary one is private and fastest),
-- then SELECT * FROM crm.import_customers('that_table').  Every row gets a
-- result in the staging table: ok with the new customer's id, or the SQLSTATE
-- and message that refused it.  A bad row never stops the good ones.
--
-- Rows are checked set-based first (formats, dictionaries, owners and scopes,
-- holding limits); the good ones are then inserted with one statement per
-- table as the importing employee, through every rule a direct insert meets.
-- Should one still fail, the rows are retried one by one, each in its own
-- subtransaction.
CREATE TABLE crm.customer_import (
	line            integer NOT NULL,
	name            text,
	kind            text,
	uscc            text,
	phone           text,
	industry        text,
	source          text,
	level           text,
	owner_id        bigint,
	contact_name    text,
	contact_mobile  text,
	contact_email   text,
	status          text NOT NULL DEFAULT 'pending',
	customer_id     bigint,
	sqlstate        text,
	message         text,
	CONSTRAINT customer_import_pkey PRIMARY KEY (line),
	CONSTRAINT customer_import_status_check CHECK (status IN ('pending', 'ok', 'error'))
);
COMMENT ON TABLE crm.customer_import IS
	'The shape of a staging table for crm.import_customers (CREATE TEMP TABLE t (LIKE crm.customer_import INCLUDING ALL)); holds no rows';
COMMENT ON COLUMN crm.customer_import.line IS 'Line of the file the row came from; results are reported by it';
COMMENT ON COLUMN crm.customer_import.name IS 'Customer name';
COMMENT ON COLUMN crm.customer_import.kind IS 'company or individual (empty: company)';
COMMENT ON COLUMN crm.customer_import.uscc IS 'Unified social credit code';
COMMENT ON COLUMN crm.customer_import.phone IS 'Main phone number';
COMMENT ON COLUMN crm.customer_import.industry IS 'Code of dictionary industry';
COMMENT ON COLUMN crm.customer_import.source IS 'Code of dictionary customer_source';
COMMENT ON COLUMN crm.customer_import.level IS 'Code of dictionary customer_level';
COMMENT ON COLUMN crm.customer_import.owner_id IS 'Owning employee (crm.employee.id); empty: the importing employee';
COMMENT ON COLUMN crm.customer_import.contact_name IS 'Name of a first contact to create with the customer';
COMMENT ON COLUMN crm.customer_import.contact_mobile IS 'That contact''s mobile';
COMMENT ON COLUMN crm.customer_import.contact_email IS 'That contact''s e-mail';
COMMENT ON COLUMN crm.customer_import.status IS 'Result, written by crm.import_customers: pending, ok or error';
COMMENT ON COLUMN crm.customer_import.customer_id IS 'Result: the id of the customer created (status ok)';
COMMENT ON COLUMN crm.customer_import.sqlstate IS 'Result: the SQLSTATE that refused the row (status error)';
COMMENT ON COLUMN crm.customer_import.message IS 'Result: the message that refused the row (status error)';
GRANT SELECT ON crm.customer_import TO crm_user;   -- enough for LIKE; nobody writes rows into it

-- Refuse a table that cannot stage an import shaped like shape: an import's
-- changes are logged as an import, so no code of the caller's may run inside
-- it, which anything on the staging table that runs when a row is read or
-- updated would (a trigger, rule, policy, child table, domain, generated
-- column, expression index or constraint of its own).  A table that passes is
-- locked against such changes (SHARE ROW EXCLUSIVE, as CREATE TRIGGER takes)
-- until the transaction ends, and checked again under the lock, with the
-- catalog as it is then (so not under repeatable read).
CREATE OR REPLACE FUNCTION crm.check_staging_table(staging regclass, shape regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	refusal text;
BEGIN
	-- (the check after the lock must read the catalog as it is then, which a
	-- transaction's snapshot taken before the wait would not)
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'an import runs in a read committed transaction, not in a % one', current_setting('transaction_isolation')
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Run it on its own, or in BEGIN ISOLATION LEVEL READ COMMITTED.';
	END IF;
	FOR pass IN 1 .. 2 LOOP
		SELECT CASE
		         WHEN k.oid IS NULL THEN 'does not exist'
		         WHEN k.relkind <> 'r' OR k.relispartition THEN 'is not a plain table'
		         WHEN EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = check_staging_table.shape AND a.attnum > 0 AND NOT a.attisdropped
		                         AND NOT EXISTS (SELECT FROM pg_attribute b WHERE b.attrelid = k.oid AND b.attname = a.attname
		                                            AND b.atttypid = a.atttypid AND NOT b.attisdropped))
		              THEN format('lacks columns of %s', check_staging_table.shape)
		         WHEN EXISTS (SELECT FROM pg_inherits h WHERE k.oid IN (h.inhparent, h.inhrelid)) THEN 'has child or parent tables'
		         WHEN k.relrowsecurity THEN 'has row-level security'
		         WHEN EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = k.oid) THEN 'has triggers'
		         WHEN EXISTS (SELECT FROM pg_rewrite w WHERE w.ev_class = k.oid) THEN 'has rules'
		         WHEN EXISTS (SELECT FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid
		                       WHERE a.attrelid = k.oid AND a.attnum > 0
		                         AND (y.typnamespace <> 'pg_catalog'::regnamespace OR a.attgenerated <> ''))
		              THEN 'has a column of a type outside pg_catalog, or a generated column'
		         WHEN EXISTS (SELECT FROM pg_index i WHERE i.indrelid = k.oid AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL))
		              THEN 'has an index on an expression'
		         WHEN EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = k.oid AND c.contype <> 'p'
		                         AND pg_get_constraintdef(c.oid) NOT IN (SELECT pg_get_constraintdef(o.oid) FROM pg_constraint o
		                                                                  WHERE o.conrelid = check_staging_table.shape))
		              THEN format('has a constraint %s does not have', check_staging_table.shape)
		       END
		  INTO refusal
		  FROM (SELECT check_staging_table.staging AS staging) s LEFT JOIN pg_class k ON k.oid = s.staging;
		EXIT WHEN refusal IS NOT NULL OR pass = 2;
		EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', staging);
	END LOOP;
	IF refusal IS NOT NULL THEN
		RAISE EXCEPTION 'staging table % %', staging, refusal
			USING ERRCODE = 'wrong_object_type',
			      DETAIL = 'The import runs no code of the caller''s: its changes are logged as an import.',
			      HINT = format('CREATE TEMP TABLE staging (LIKE %s INCLUDING ALL);', shape);
	END IF;
END
$$;
COMMENT ON FUNCTION crm.check_staging_table(regclass, regclass) IS
	'Refuse (42809, saying why) a table that cannot stage an import shaped like the second (crm.customer_import, crm.product_import, crm.opportunity_import), and lock one that can against changes until the transaction ends';

-- crm.import_customers() (C, src/core/context.c) logs the changes of this, its work,
-- as an import
CREATE OR REPLACE FUNCTION crm.import_customers(staging regclass, OUT imported integer, OUT refused integer)
	AS 'MODULE_PATHNAME', 'crm_import_customers' LANGUAGE C STRICT;

CREATE OR REPLACE FUNCTION crm.import_customers_apply(staging regclass, OUT imported integer, OUT refused integer)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me          bigint := crm.current_employee_id();
	r           record;
	id          bigint;
	state       text;
	msg         text;
	insert_customer constant text :=
		'INSERT INTO crm.customer (name, kind, uscc, phone, industry, source, level, owner_id)'
		' VALUES ($1, coalesce($2, ''company''), $3, $4, $5, $6, $7, $8) RETURNING id';
	insert_contact constant text :=
		'INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)'
		' SELECT $1, coalesce($2, $3), $4, $5, true, $6 WHERE $2 IS NOT NULL OR $4 IS NOT NULL';
BEGIN
	IF NOT crm.has_permission('customer.import') AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION 'employee % may not import customers', coalesce(me::text, 'nobody')
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'Ask an administrator to add "customer.import" to one of your roles (crm.role_permission).';
	END IF;
	PERFORM crm.check_staging_table(staging, 'crm.customer_import');

	-- the checks a row can fail, in order; the first failure is its result (its
	-- message is formatted only then: most rows fail nothing)
	EXECUTE format($q$
	UPDATE %1$s i SET status = 'error', sqlstate = v.state,
	       message = CASE v.n
	           WHEN 1 THEN 'name is required'
	           WHEN 2 THEN format('kind "%%s" is neither company nor individual', i.kind)
	           WHEN 3 THEN 'a company customer needs its unified social credit code'
	           WHEN 4 THEN format('"%%s" is not a valid unified social credit code', i.uscc)
	           WHEN 5 THEN 'an individual customer needs a contact mobile number'
	           WHEN 6 THEN format('"%%s" is not a valid mobile number', i.contact_mobile)
	           WHEN 7 THEN format('"%%s" is not a valid e-mail address', i.contact_email)
	           WHEN 8 THEN format('%%s "%%s" is not an enabled code of dictionary "%%s"', v.col, v.code, v.kind)
	           WHEN 9 THEN format('owner %%s is not an active employee', coalesce(i.owner_id, $1))
	           WHEN 10 THEN format('owner %%s is outside the importer''s customer scope', coalesce(i.owner_id, $1))
	       END
	  FROM (SELECT i2.line, f.n, f.state, bad.col, bad.code, bad.kind
	          FROM %1$s i2
	          LEFT JOIN crm.employee own ON own.id = coalesce(i2.owner_id, $1)
	          LEFT JOIN LATERAL (
	                SELECT c.col, c.code, c.kind
	                  FROM (VALUES ('industry', i2.industry, 'industry'), ('source', i2.source, 'customer_source'),
	                               ('level', i2.level, 'customer_level')) c(col, code, kind)
	                 WHERE c.code IS NOT NULL
	                   AND NOT EXISTS (SELECT FROM crm.dictionary d WHERE d.kind = c.kind AND d.code = c.code AND d.enabled)
	                 LIMIT 1) bad ON true
	          CROSS JOIN LATERAL (SELECT t.n, t.state FROM (VALUES
	                (1, coalesce(btrim(i2.name), '') = '', '23514'),
	                (2, coalesce(i2.kind, 'company') NOT IN ('company', 'individual'), '23514'),
	                (3, coalesce(i2.kind, 'company') = 'company' AND i2.uscc IS NULL, '23514'),
	                (4, i2.uscc IS NOT NULL AND NOT crm.uscc_valid(i2.uscc), '23514'),
	                (5, i2.kind = 'individual' AND i2.contact_mobile IS NULL, '23514'),
	                (6, i2.contact_mobile IS NOT NULL AND NOT crm.mobile_valid(crm.normal_mobile(i2.contact_mobile)), '23514'),
	                (7, i2.contact_email IS NOT NULL AND NOT crm.email_valid(i2.contact_email), '23514'),
	                (8, bad.col IS NOT NULL, '23503'),
	                (9, own.id IS NULL OR NOT own.active, '23503'),
	                (10, NOT $2 AND NOT coalesce(i2.owner_id, $1) = ANY (crm.scope_owners('customer')), '42501')
	              ) t(n, failed, state) WHERE t.failed ORDER BY t.n LIMIT 1) f
	         WHERE i2.status = 'pending') v
	 WHERE i.line = v.line$q$, staging)
	USING me, current_setting('is_superuser')::boolean;

	-- holding limits: rows beyond what each owner may still hold
	EXECUTE format($q$
	UPDATE %1$s i SET status = 'error', sqlstate = '23514',
	       message = format('owner "%%s" would hold more than their limit of %%s customers', crm.clip(v.owner), v.holding_limit)
	  FROM (SELECT i2.line, e.name AS owner, coalesce(e.holding_limit, (SELECT st.holding_limit FROM crm.settings st)) AS holding_limit,
	               row_number() OVER (PARTITION BY e.id ORDER BY i2.line)
	               + (SELECT count(*) FROM crm.customer c JOIN crm.customer_status s ON s.id = c.status_id
	                   WHERE c.owner_id = e.id AND s.outcome IS DISTINCT FROM 'won') AS would_hold
	          FROM %1$s i2 JOIN crm.employee e ON e.id = coalesce(i2.owner_id, $1)
	         WHERE i2.status = 'pending' AND NOT e.is_pool) v
	 WHERE i.line = v.line AND v.would_hold > v.holding_limit$q$, staging)
	USING me;

	-- the good rows, in one go; if anything still fails, one by one.  Identity
	-- values follow insertion order, which follows ORDER BY line: the n-th new
	-- id belongs to the n-th pending line.
	BEGIN
		EXECUTE format($q$
		WITH pending AS (
			SELECT line, row_number() OVER (ORDER BY line) AS n FROM %1$s WHERE status = 'pending'
		), inserted AS (
			INSERT INTO crm.customer (name, kind, uscc, phone, industry, source, level, owner_id)
			SELECT s.name, coalesce(s.kind, 'company'), s.uscc, s.phone, s.industry, s.source, s.level, coalesce(s.owner_id, $1)
			  FROM %1$s s WHERE s.status = 'pending' ORDER BY s.line
			RETURNING id
		), numbered AS (
			SELECT id, row_number() OVER (ORDER BY id) AS n FROM inserted
		), done AS (
			UPDATE %1$s s SET status = 'ok', customer_id = numbered.id
			  FROM pending JOIN numbered USING (n)
			 WHERE s.line = pending.line
			RETURNING s.customer_id
		)
		SELECT min(customer_id) FROM done$q$, staging)
		INTO id USING me;
		-- this run's rows are the ok ones from the first new id on
		EXECUTE format($q$
		INSERT INTO crm.contact (customer_id, name, mobile, email, is_decision_maker, owner_id)
		SELECT s.customer_id, coalesce(s.contact_name, s.name), s.contact_mobile, s.contact_email, true, coalesce(s.owner_id, $1)
		  FROM %1$s s
		 WHERE s.status = 'ok' AND s.customer_id >= $2
		   AND (s.contact_name IS NOT NULL OR s.contact_mobile IS NOT NULL)$q$, staging)
		USING me, id;
		-- the individual-contact rule waits for commit: check it while rows can still be refused
		SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact IMMEDIATE;
	EXCEPTION WHEN OTHERS THEN
		FOR r IN EXECUTE format('SELECT * FROM %s WHERE status = ''pending'' ORDER BY line', staging) LOOP
			BEGIN
				SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact DEFERRED;
				EXECUTE insert_customer INTO id
					USING r.name, r.kind, r.uscc, r.phone, r.industry, r.source, r.level, coalesce(r.owner_id, me);
				EXECUTE insert_contact
					USING id, r.contact_name, r.name, r.contact_mobile, r.contact_email, coalesce(r.owner_id, me);
				SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact IMMEDIATE;
				EXECUTE format('UPDATE %s SET status = ''ok'', customer_id = $1 WHERE line = $2', staging) USING id, r.line;
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
				EXECUTE format('UPDATE %s SET status = ''error'', sqlstate = $1, message = $2 WHERE line = $3', staging)
					USING state, msg, r.line;
			END;
		END LOOP;
	END;

	SET CONSTRAINTS crm.customer_individual_contact, crm.contact_individual_contact DEFERRED;
	EXECUTE format('SELECT count(*) FILTER (WHERE status = ''ok''), count(*) FILTER (WHERE status = ''error'') FROM %s',
	               staging) INTO imported, refused;
END
$$;
COMMENT ON FUNCTION crm.import_customers(regclass) IS
	'Import the pending rows of a staging table shaped like crm.customer_import; each row gets ok and its customer id, or the SQLSTATE and message that refused it';
