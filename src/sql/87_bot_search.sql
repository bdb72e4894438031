-- Keyword search for IM bots (seed 002: "找客户, 找线索, 找联系人"): what the
-- acting employee may see among the record types that take part in search
-- (customers, leads and contacts: crm.record_type names each one's title and
-- search columns), with counts, for an HTTP layer to answer a bot.  SECURITY
-- INVOKER: row-level security decides.
CREATE OR REPLACE FUNCTION crm.bot_search(keyword text, max_rows integer DEFAULT 5)
	RETURNS TABLE (record_type text, total bigint, id bigint, label text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pattern text;
	hits    text;
	types   text[];
BEGIN
	-- before any work: no name, phone or code crm keeps is longer (docs/records.md)
	IF length(keyword) > 200 THEN
		RAISE EXCEPTION 'a bot search keyword has at most 200 characters, not %', length(keyword)
			USING ERRCODE = 'string_data_right_truncation',
			      DETAIL = format('The keyword begins "%s".', crm.clip(keyword)),
			      HINT = 'Send part of a name, a phone or mobile number, or a credit code.';
	END IF;
	keyword := btrim(keyword);
	IF keyword IS NULL OR length(keyword) < 2 THEN
		RAISE EXCEPTION 'a bot search needs a keyword of at least 2 characters, not "%"', coalesce(keyword, '')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Send part of a name, a phone or mobile number, or a credit code.';
	END IF;
	IF max_rows IS NULL OR max_rows NOT BETWEEN 0 AND 50 THEN
		RAISE EXCEPTION 'max_rows must be between 0 and 50, not %', max_rows
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'A bot shows a few rows; 0 returns the counts only.';
	END IF;
	-- the keyword is matched literally: LIKE's wildcards in it are escaped
	pattern := '%' || replace(replace(replace(keyword, '\', '\\'), '%', '\%'), '_', '\_') || '%';
	-- every type that takes part in search, in the registry's order (crm.record_type)
	SELECT string_agg(format('SELECT %L AS t, r.id, (%s)::text AS label, r.updated_at AS at FROM %s r WHERE %s',
	                         t.name, t.title, t.relation,
	                         (SELECT string_agg(format('r.%I ILIKE $1', c), ' OR ') FROM unnest(t.search_columns) c)),
	                  ' UNION ALL ' ORDER BY t.position),
	       array_agg(t.name ORDER BY t.position)
	  INTO hits, types
	  FROM crm.record_type t WHERE 'search' = ANY (t.capabilities);
	-- a login that is nobody sees no types, and so finds nothing
	IF hits IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format($q$
	WITH hits AS (%s), ranked AS (
		SELECT h.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY h.at DESC, h.id DESC) AS pos
		  FROM hits h
		WINDOW w AS (PARTITION BY h.t)
	)
	-- one row per type even without hits, so that a bot can say "none found"
	SELECT ty.t, coalesce(r.n, 0), CASE WHEN $3 > 0 THEN r.id END, CASE WHEN $3 > 0 THEN r.label END
	  FROM unnest($2) WITH ORDINALITY ty(t, o)
	  LEFT JOIN ranked r ON r.t = ty.t AND r.pos <= greatest($3, 1)
	 ORDER BY ty.o, r.pos$q$, hits) USING pattern, types, max_rows;
END
$$;
COMMENT ON FUNCTION crm.bot_search(text, integer) IS
	'Records of the types that take part in search (customers, leads, contacts) the acting employee may see that match a keyword: per type the total and the newest max_rows';
