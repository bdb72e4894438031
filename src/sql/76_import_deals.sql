-- Importing products and deals (seed 003), as customers are imported
-- (75_import.sql): COPY the file into a staging table shaped like
-- crm.product_import or crm.opportunity_import (a temporary one is private and
-- fastest), then SELECT * FROM crm.import_products('that_table') or
-- crm.import_opportunities('that_table').  Every row gets a result in the
-- staging table: ok with the new record's id, or the SQLSTATE and message that
-- refused it.  A bad row never stops the good ones.
--
-- What the file names (a customer, a stage set, a stage) is resolved
-- set-based first.  The rows are then inserted with one statement, as the
-- importing employee, through every rule a direct insert meets; should one
-- fail, they are retried one by one, each in its own subtransaction, so that
-- each refused row carries the rule's own message.

CREATE TABLE crm.product_import (
	line         integer NOT NULL,
	code         text,
	name         text,
	category     text,
	unit         text,
	list_price   numeric,
	description  text,
	on_shelf     boolean,
	status       text NOT NULL DEFAULT 'pending',
	product_id   bigint,
	sqlstate     text,
	message      text,
	CONSTRAINT product_import_pkey PRIMARY KEY (line),
	CONSTRAINT product_import_status_check CHECK (status IN ('pending', 'ok', 'error'))
);
COMMENT ON TABLE crm.product_import IS
	'The shape of a staging table for crm.import_products (CREATE TEMP TABLE t (LIKE crm.product_import INCLUDING ALL)); holds no rows';
COMMENT ON COLUMN crm.product_import.line IS 'Line of the file the row came from; results are reported by it';
COMMENT ON COLUMN crm.product_import.code IS 'Product code; unique';
COMMENT ON COLUMN crm.product_import.name IS 'Product name';
COMMENT ON COLUMN crm.product_import.category IS 'Code of dictionary product_category';
COMMENT ON COLUMN crm.product_import.unit IS 'Code of dictionary unit';
COMMENT ON COLUMN crm.product_import.list_price IS 'List price in yuan (empty: 0)';
COMMENT ON COLUMN crm.product_import.description IS 'Description';
COMMENT ON COLUMN crm.product_import.on_shelf IS 'On the shelf (empty: yes)';
COMMENT ON COLUMN crm.product_import.status IS 'Result, written by crm.import_products: pending, ok or error';
COMMENT ON COLUMN crm.product_import.product_id IS 'Result: the id of the product created (status ok)';
COMMENT ON COLUMN crm.product_import.sqlstate IS 'Result: the SQLSTATE that refused the row (status error)';
COMMENT ON COLUMN crm.product_import.message IS 'Result: the message that refused the row (status error)';

CREATE TABLE crm.opportunity_import (
	line               integer NOT NULL,
	customer_id        bigint,
	customer           text,
	name               text,
	amount             numeric,
	expected_close_on  date,
	stage_set          text,
	stage              text,
	owner_id           bigint,
	requirement        text,
	budget             numeric,
	decision_on        date,
	lost_reason        text,
	status             text NOT NULL DEFAULT 'pending',
	opportunity_id     bigint,
	sqlstate           text,
	message            text,
	CONSTRAINT opportunity_import_pkey PRIMARY KEY (line),
	CONSTRAINT opportunity_import_status_check CHECK (status IN ('pending', 'ok', 'error'))
);
COMMENT ON TABLE crm.opportunity_import IS
	'The shape of a staging table for crm.import_opportunities (CREATE TEMP TABLE t (LIKE crm.opportunity_import INCLUDING ALL)); holds no rows';
COMMENT ON COLUMN crm.opportunity_import.line IS 'Line of the file the row came from; results are reported by it';
COMMENT ON COLUMN crm.opportunity_import.customer_id IS 'The customer (crm.customer.id); or name it in customer';
COMMENT ON COLUMN crm.opportunity_import.customer IS 'The customer''s exact name, one customer the importer sees (when customer_id is empty)';
COMMENT ON COLUMN crm.opportunity_import.name IS 'Name of the deal';
COMMENT ON COLUMN crm.opportunity_import.amount IS 'Deal amount in yuan (empty: 0)';
COMMENT ON COLUMN crm.opportunity_import.expected_close_on IS 'Expected close date';
COMMENT ON COLUMN crm.opportunity_import.stage_set IS 'Name of the stage set (empty: the owner''s, crm.owner_stage_set)';
COMMENT ON COLUMN crm.opportunity_import.stage IS 'Name of a stage of that set (empty: its first); a won or lost stage imports a closed deal';
COMMENT ON COLUMN crm.opportunity_import.owner_id IS 'Owning employee (crm.employee.id); empty: the importing employee';
COMMENT ON COLUMN crm.opportunity_import.requirement IS 'What the customer needs';
COMMENT ON COLUMN crm.opportunity_import.budget IS 'The customer''s budget in yuan';
COMMENT ON COLUMN crm.opportunity_import.decision_on IS 'When the customer decides';
COMMENT ON COLUMN crm.opportunity_import.lost_reason IS 'Code of dictionary lost_reason, for a deal imported in a lost stage';
COMMENT ON COLUMN crm.opportunity_import.status IS 'Result, written by crm.import_opportunities: pending, ok or error';
COMMENT ON COLUMN crm.opportunity_import.opportunity_id IS 'Result: the id of the deal created (status ok)';
COMMENT ON COLUMN crm.opportunity_import.sqlstate IS 'Result: the SQLSTATE that refused the row (status error)';
COMMENT ON COLUMN crm.opportunity_import.message IS 'Result: the message that refused the row (status error)';
GRANT SELECT ON crm.product_import, crm.opportunity_import TO crm_user;   -- enough for LIKE; nobody writes rows into them

-- crm.import_products() and crm.import_opportunities() (C, src/core/context.c)
-- log the changes of this, their work, as an import
CREATE OR REPLACE FUNCTION crm.import_products(staging regclass, OUT imported integer, OUT refused integer)
	AS 'MODULE_PATHNAME', 'crm_import_products' LANGUAGE C STRICT;
CREATE OR REPLACE FUNCTION crm.import_opportunities(staging regclass, OUT imported integer, OUT refused integer)
	AS 'MODULE_PATHNAME', 'crm_import_opportunities' LANGUAGE C STRICT;

CREATE OR REPLACE FUNCTION crm.import_records_apply(record_type text, staging regclass, OUT imported integer, OUT refused integer)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	me         bigint := crm.current_employee_id();
	permission text := CASE record_type WHEN 'product' THEN 'product.manage' ELSE 'opportunity.import' END;
	shape      regclass := CASE record_type WHEN 'product' THEN 'crm.product_import' ELSE 'crm.opportunity_import' END;
	id_column  text := record_type || '_id';
	insert_rows text;
	r          record;
	id         bigint;
	state      text;
	msg        text;
BEGIN
	IF record_type NOT IN ('product', 'opportunity') THEN
		RAISE EXCEPTION 'crm imports no records of type "%" here', record_type USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT crm.has_permission(permission) AND NOT current_setting('is_superuser')::boolean THEN
		RAISE EXCEPTION '% may not import %', coalesce((SELECT format('employee "%s"', crm.clip(e.name)) FROM crm.employee e WHERE e.id = me), 'nobody'),
			CASE record_type WHEN 'product' THEN 'products' ELSE 'opportunities' END
			USING ERRCODE = 'insufficient_privilege',
			      HINT = format('Ask an administrator to add "%s" to one of your roles (crm.role_permission).', permission);
	END IF;
	PERFORM crm.check_staging_table(staging, shape);

	-- the names a deal's row gives, as ids; a name that is none, or more than
	-- one customer, is the row's result
	IF record_type = 'opportunity' THEN
		EXECUTE format($q$
		UPDATE %1$s i SET status = 'error', sqlstate = v.state, message = v.message
		  FROM (SELECT i2.line, f.state, f.message
		          FROM %1$s i2
		          LEFT JOIN LATERAL (SELECT count(*) AS n, min(c.id) AS id FROM crm.customer c
		                              WHERE i2.customer_id IS NULL AND c.name = i2.customer) c ON true
		          LEFT JOIN crm.stage_set t ON t.name = i2.stage_set
		          LEFT JOIN LATERAL (SELECT g.id FROM crm.stage g
		                              WHERE g.name = i2.stage
		                                AND g.stage_set_id = coalesce(t.id, crm.owner_stage_set(coalesce(i2.owner_id, $1)))) g ON true
		          CROSS JOIN LATERAL (SELECT x.state, x.message FROM (VALUES
		                (1, i2.customer_id IS NULL AND i2.customer IS NULL, '23502', 'a deal needs its customer: customer_id or customer'),
		                (2, i2.customer_id IS NULL AND c.n = 0, '23503',
		                    format('no customer named "%%s" is visible to the importer', crm.clip(i2.customer))),
		                (3, i2.customer_id IS NULL AND c.n > 1, '21000',
		                    format('%%s customers are named "%%s": give the customer_id', c.n, crm.clip(i2.customer))),
		                (4, i2.stage_set IS NOT NULL AND t.id IS NULL, '23503',
		                    format('there is no stage set "%%s"', crm.clip(i2.stage_set))),
		                (5, i2.stage IS NOT NULL AND g.id IS NULL, '23503',
		                    format('stage set "%%s" has no stage "%%s"',
		                           coalesce(t.name, (SELECT s.name FROM crm.stage_set s WHERE s.id = crm.owner_stage_set(coalesce(i2.owner_id, $1)))),
		                           crm.clip(i2.stage)))
		              ) x(n, failed, state, message) WHERE x.failed ORDER BY x.n LIMIT 1) f
		         WHERE i2.status = 'pending') v
		 WHERE i.line = v.line$q$, staging)
		USING me;
		insert_rows := $q$
		INSERT INTO crm.opportunity (customer_id, name, amount, expected_close_on, stage_set_id, stage_id, owner_id,
		                             requirement, budget, decision_on, lost_reason)
		SELECT coalesce(s.customer_id, (SELECT c.id FROM crm.customer c WHERE c.name = s.customer)), s.name, coalesce(s.amount, 0),
		       s.expected_close_on, t.id, g.id, coalesce(s.owner_id, $2), s.requirement, s.budget, s.decision_on, s.lost_reason
		  FROM %1$s s
		  LEFT JOIN crm.stage_set t ON t.name = s.stage_set
		  LEFT JOIN crm.stage g ON g.name = s.stage AND g.stage_set_id = coalesce(t.id, crm.owner_stage_set(coalesce(s.owner_id, $2)))
		 WHERE s.line = ANY ($1) OR ($1 IS NULL AND s.status = 'pending') ORDER BY s.line
		RETURNING id$q$;
	ELSE
		insert_rows := $q$
		INSERT INTO crm.product (code, name, category, unit, list_price, description, on_shelf)
		SELECT s.code, s.name, s.category, s.unit, coalesce(s.list_price, 0), s.description, coalesce(s.on_shelf, true)
		  FROM %1$s s WHERE s.line = ANY ($1) OR ($1 IS NULL AND s.status = 'pending') ORDER BY s.line
		RETURNING id$q$;
	END IF;

	-- the pending rows in one go ($1 NULL: all of them); if anything fails, one by one.  Identity
	-- values follow insertion order, which follows ORDER BY line: the n-th new
	-- id belongs to the n-th pending line.
	BEGIN
		EXECUTE format($q$
		WITH pending AS (
			SELECT line, row_number() OVER (ORDER BY line) AS n FROM %1$s WHERE status = 'pending'
		), inserted AS (%2$s
		), numbered AS (
			SELECT id, row_number() OVER (ORDER BY id) AS n FROM inserted
		)
		UPDATE %1$s s SET status = 'ok', %3$I = numbered.id
		  FROM pending JOIN numbered USING (n)
		 WHERE s.line = pending.line$q$, staging, format(insert_rows, staging), id_column)
		USING NULL::integer[], me;
	EXCEPTION WHEN OTHERS THEN
		FOR r IN EXECUTE format('SELECT line FROM %s WHERE status = ''pending'' ORDER BY line', staging) LOOP
			BEGIN
				EXECUTE format(insert_rows, staging) INTO id USING ARRAY[r.line], me;
				EXECUTE format('UPDATE %s SET status = ''ok'', %I = $1 WHERE line = $2', staging, id_column) USING id, r.line;
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
				EXECUTE format('UPDATE %s SET status = ''error'', sqlstate = $1, message = $2 WHERE line = $3', staging)
					USING state, msg, r.line;
			END;
		END LOOP;
	END;
	EXECUTE format('SELECT count(*) FILTER (WHERE status = ''ok''), count(*) FILTER (WHERE status = ''error'') FROM %s',
	               staging) INTO imported, refused;
END
$$;
COMMENT ON FUNCTION crm.import_products(regclass) IS
	'Import the pending rows of a staging table shaped like crm.product_import (needs product.manage); each row gets ok and its product id, or the SQLSTATE and message that refused it';
COMMENT ON FUNCTION crm.import_opportunities(regclass) IS
	'Import the pending rows of a staging table shaped like crm.opportunity_import (needs opportunity.import); each row gets ok and its deal id, or the SQLSTATE and message that refused it';
