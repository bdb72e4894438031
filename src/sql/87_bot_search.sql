-- Keyword search for IM bots (seed 002: "找客户, 找线索, 找联系人"): what the
-- acting employee may see among customers, leads and contacts, with counts, for
-- an HTTP layer to answer a bot.  SECURITY INVOKER: row-level security decides.
CREATE OR REPLACE FUNCTION crm.bot_search(keyword text, max_rows integer DEFAULT 5)
	RETURNS TABLE (record_type text, total bigint, id bigint, label text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pattern text;
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
	RETURN QUERY
	WITH hits AS (
		SELECT 'customer' AS t, c.id, c.name AS label, c.updated_at AS at
		  FROM crm.customer c
		 WHERE c.name ILIKE pattern OR c.phone LIKE pattern OR c.uscc = upper(keyword)
		UNION ALL
		SELECT 'lead', l.id, concat_ws(' · ', l.name, l.company), l.updated_at
		  FROM crm.lead l
		 WHERE l.name ILIKE pattern OR l.company ILIKE pattern OR l.mobile LIKE pattern OR l.uscc = upper(keyword)
		UNION ALL
		SELECT 'contact', k.id, concat_ws(' · ', k.name, k.mobile), k.updated_at
		  FROM crm.contact k
		 WHERE k.name ILIKE pattern OR k.mobile LIKE pattern OR k.email ILIKE pattern
	), ranked AS (
		SELECT h.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY h.at DESC, h.id DESC) AS pos
		  FROM hits h
		WINDOW w AS (PARTITION BY h.t)
	)
	-- one row per type even without hits, so that a bot can say "none found"
	SELECT ty.t, coalesce(r.n, 0), CASE WHEN max_rows > 0 THEN r.id END, CASE WHEN max_rows > 0 THEN r.label END
	  FROM unnest(ARRAY['customer', 'lead', 'contact']) WITH ORDINALITY ty(t, o)
	  LEFT JOIN ranked r ON r.t = ty.t AND r.pos <= greatest(max_rows, 1)
	 ORDER BY ty.o, r.pos;
END
$$;
COMMENT ON FUNCTION crm.bot_search(text, integer) IS
	'Customers, leads and contacts the acting employee may see that match a keyword: per type the total and the newest max_rows';
