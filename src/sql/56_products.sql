-- Products (产品, seeds 002, 003, 004) and competitors (竞争对手, seed 004): the
-- catalogues deals and contracts draw on.  Every employee reads them; holders
-- of product.manage write them.  docs/products.md.
--
-- They are configuration, like stages: rows without an owner or a scope, so
-- not record types of the registry.

INSERT INTO crm.permission (action, description) VALUES
	('product.manage', 'Manage products, who may sell them, and competitors');

-- (crm 0.1 shipped the dictionaries product_category and unit; a product's
-- unit may also be person-days and licences)
INSERT INTO crm.dictionary (kind, code, label, position, builtin)
SELECT 'unit', code, label, (SELECT max(d.position) FROM crm.dictionary d WHERE d.kind = 'unit') + n, true
  FROM unnest('{person_day,license}'::text[], '{人天,授权}'::text[]) WITH ORDINALITY u(code, label, n);

CREATE TABLE crm.product (
	id           bigint GENERATED ALWAYS AS IDENTITY,
	code         text NOT NULL,
	name         text NOT NULL,
	category     text,
	unit         text,
	list_price   numeric(14, 2) NOT NULL DEFAULT 0,
	description  text,
	on_shelf     boolean NOT NULL DEFAULT true,
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT product_pkey PRIMARY KEY (id),
	CONSTRAINT product_code_key UNIQUE (code),
	CONSTRAINT product_code_check CHECK (crm.check_length(code, 60, 'product.code') AND btrim(code) <> ''),
	CONSTRAINT product_name_check CHECK (crm.check_length(name, 200, 'product.name') AND btrim(name) <> ''),
	CONSTRAINT product_description_length CHECK (crm.check_length(description, 20000, 'product.description')),
	CONSTRAINT product_list_price_check CHECK (list_price >= 0 AND list_price <> 'NaN')
);
COMMENT ON TABLE crm.product IS 'Products (产品): what deals and contracts sell; read by every employee, written with product.manage';
COMMENT ON COLUMN crm.product.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.product.code IS 'Product code (产品编码); unique; at most 60 characters';
COMMENT ON COLUMN crm.product.name IS 'Name people see; at most 200 characters';
COMMENT ON COLUMN crm.product.category IS 'Code of dictionary product_category (crm.dictionary)';
COMMENT ON COLUMN crm.product.unit IS 'Code of dictionary unit (crm.dictionary)';
COMMENT ON COLUMN crm.product.list_price IS 'List price per unit in yuan: a new line''s unit price unless given; not negative';
COMMENT ON COLUMN crm.product.description IS 'What it is; at most 20,000 characters';
COMMENT ON COLUMN crm.product.on_shelf IS 'On the shelf (上架): only these go on new deal and contract lines; lines that have it keep it';
COMMENT ON COLUMN crm.product.created_at IS 'When the product was created; kept by crm; not writable';
COMMENT ON COLUMN crm.product.updated_at IS 'When the product last changed; kept by crm; not writable';
CREATE OR REPLACE TRIGGER product_stamp BEFORE INSERT OR UPDATE ON crm.product
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();
CREATE OR REPLACE TRIGGER product_dictionary_check BEFORE INSERT OR UPDATE ON crm.product
	FOR EACH ROW EXECUTE FUNCTION crm.check_dictionary();
INSERT INTO crm.dictionary_column (table_name, column_name, kind, builtin) VALUES
	('product', 'category', 'product_category', true),
	('product', 'unit', 'unit', true);

-- Who may sell a product (seed 002, 授权产品): a product with rows here is
-- sold only by the employees named and the members of the departments named
-- (with their sub-departments); one without rows by everyone.
CREATE TABLE crm.product_seller (
	product_id     bigint NOT NULL,
	employee_id    bigint,
	department_id  bigint,
	CONSTRAINT product_seller_product_fkey FOREIGN KEY (product_id) REFERENCES crm.product (id) ON DELETE CASCADE,
	CONSTRAINT product_seller_employee_fkey FOREIGN KEY (employee_id) REFERENCES crm.employee (id) ON DELETE CASCADE,
	CONSTRAINT product_seller_department_fkey FOREIGN KEY (department_id) REFERENCES crm.department (id) ON DELETE CASCADE,
	CONSTRAINT product_seller_one_check CHECK ((employee_id IS NULL) <> (department_id IS NULL))
);
COMMENT ON TABLE crm.product_seller IS 'Who may sell a product (授权产品): employees and departments (with sub-departments); none listed: everyone';
COMMENT ON COLUMN crm.product_seller.product_id IS 'The product (crm.product.id)';
COMMENT ON COLUMN crm.product_seller.employee_id IS 'An employee who may sell it (crm.employee.id), or NULL';
COMMENT ON COLUMN crm.product_seller.department_id IS 'A department whose members (and its sub-departments'') may sell it (crm.department.id), or NULL';
CREATE UNIQUE INDEX product_seller_key ON crm.product_seller (product_id, coalesce(employee_id, 0), coalesce(department_id, 0));
CREATE INDEX product_seller_employee_idx ON crm.product_seller (employee_id);
CREATE INDEX product_seller_department_idx ON crm.product_seller (department_id);

-- Whether an employee may sell a product, and who may when they may not.
-- An employee's department and those above it, nearest first (depth 0): who
-- sells under a department's rules (product sellers, stage sets).
CREATE OR REPLACE FUNCTION crm.department_path(employee_id bigint)
RETURNS TABLE (department_id bigint, depth integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	WITH RECURSIVE up AS (
		SELECT d.id, d.parent_id, 0 AS depth FROM crm.employee e JOIN crm.department d ON d.id = e.department_id
		 WHERE e.id = department_path.employee_id
		UNION ALL
		SELECT d.id, d.parent_id, up.depth + 1 FROM up JOIN crm.department d ON d.id = up.parent_id WHERE up.depth < 64)
	SELECT up.id, up.depth FROM up;
END;
COMMENT ON FUNCTION crm.department_path(bigint) IS
	'An employee''s department and the departments above it, nearest first (depth 0 is their own)';

CREATE OR REPLACE FUNCTION crm.product_sellers(product_id bigint, employee_id bigint, OUT allowed boolean, OUT sellers text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT NOT EXISTS (SELECT FROM crm.product_seller s WHERE s.product_id = product_sellers.product_id)
	       OR EXISTS (SELECT FROM crm.product_seller s WHERE s.product_id = product_sellers.product_id
	                     AND (s.employee_id = product_sellers.employee_id
	                          OR s.department_id IN (SELECT p.department_id FROM crm.department_path(product_sellers.employee_id) p))),
	       (SELECT string_agg(coalesce(e.name, d.name || '（部门）'), '、' ORDER BY s.department_id NULLS LAST, e.name, d.name)
	          FROM crm.product_seller s LEFT JOIN crm.employee e ON e.id = s.employee_id
	          LEFT JOIN crm.department d ON d.id = s.department_id
	         WHERE s.product_id = product_sellers.product_id);
END;
COMMENT ON FUNCTION crm.product_sellers(bigint, bigint) IS
	'Whether the employee may sell the product (crm.product_seller), and who may, for messages';

-- Competitors (竞争对手, seed 004): set up beforehand, with their strengths and
-- weaknesses, so that salespeople know whom they meet on a deal.
CREATE TABLE crm.competitor (
	id          bigint GENERATED ALWAYS AS IDENTITY,
	name        text NOT NULL,
	strengths   text,
	weaknesses  text,
	website     text,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT competitor_pkey PRIMARY KEY (id),
	CONSTRAINT competitor_name_key UNIQUE (name),
	CONSTRAINT competitor_name_check CHECK (crm.check_length(name, 200, 'competitor.name') AND btrim(name) <> ''),
	CONSTRAINT competitor_strengths_length CHECK (crm.check_length(strengths, 2000, 'competitor.strengths')),
	CONSTRAINT competitor_weaknesses_length CHECK (crm.check_length(weaknesses, 2000, 'competitor.weaknesses')),
	CONSTRAINT competitor_website_check CHECK (crm.check_length(website, 400, 'competitor.website'))
);
COMMENT ON TABLE crm.competitor IS 'Competitors (竞争对手): whom deals meet, their strengths and weaknesses; read by every employee, written with product.manage';
COMMENT ON COLUMN crm.competitor.id IS 'Identity; kept by crm; not writable';
COMMENT ON COLUMN crm.competitor.name IS 'Company name; unique';
COMMENT ON COLUMN crm.competitor.strengths IS 'What they do well (优势); at most 2,000 characters';
COMMENT ON COLUMN crm.competitor.weaknesses IS 'Where they are weak (劣势); at most 2,000 characters';
COMMENT ON COLUMN crm.competitor.website IS 'Their website';
COMMENT ON COLUMN crm.competitor.created_at IS 'When the competitor was entered; kept by crm; not writable';
COMMENT ON COLUMN crm.competitor.updated_at IS 'When the competitor last changed; kept by crm; not writable';
CREATE OR REPLACE TRIGGER competitor_stamp BEFORE INSERT OR UPDATE ON crm.competitor
	FOR EACH ROW EXECUTE FUNCTION crm.stamp_record();

CREATE OR REPLACE TRIGGER product_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.product
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('product.manage');
CREATE OR REPLACE TRIGGER product_seller_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.product_seller
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('product.manage');
CREATE OR REPLACE TRIGGER competitor_require_admin BEFORE INSERT OR UPDATE OR DELETE ON crm.competitor
	FOR EACH STATEMENT EXECUTE FUNCTION crm.require_admin('product.manage');
GRANT SELECT, DELETE ON crm.product, crm.product_seller, crm.competitor TO crm_user;
GRANT INSERT (code, name, category, unit, list_price, description, on_shelf),
      UPDATE (code, name, category, unit, list_price, description, on_shelf) ON crm.product TO crm_user;
GRANT INSERT (product_id, employee_id, department_id), UPDATE (product_id, employee_id, department_id)
	ON crm.product_seller TO crm_user;
GRANT INSERT (name, strengths, weaknesses, website), UPDATE (name, strengths, weaknesses, website)
	ON crm.competitor TO crm_user;
