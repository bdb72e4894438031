-- IM message bodies: crm.im_payload() for every platform and kind, truncation to the
-- platforms' byte limits (docs/im-platforms.md), and its errors.  Creates no rows, so no
-- sequences need setting.
-- the six shapes, for a short Chinese message
SELECT crm.im_payload('wecom', 'robot', NULL, NULL, '新线索', '客户张三来电咨询报价', NULL);
SELECT crm.im_payload('feishu', 'robot', NULL, NULL, '新线索', '客户张三来电咨询报价', NULL);
SELECT crm.im_payload('dingtalk', 'robot', NULL, NULL, '新线索', '客户张三来电咨询报价', 'k-1');
SELECT crm.im_payload('wecom', 'app', 'zhangsan', '1000002', '新线索', '客户张三来电咨询报价', 'k-1');
SELECT crm.im_payload('feishu', 'app', 'ou_zhangsan', NULL, '新线索', '客户张三来电咨询报价', 'k-1');
SELECT crm.im_payload('dingtalk', 'app', 'u1,u2', '123456', '新线索', '客户张三来电咨询报价', NULL);
-- without an idempotency key: no duplicate check, no uuid, no msgUuid
SELECT crm.im_payload('wecom', 'app', 'zhangsan', '1000002', '新线索', '客户张三', NULL);
SELECT crm.im_payload('feishu', 'app', 'ou_zhangsan', NULL, '新线索', '客户张三', NULL);
SELECT crm.im_payload('dingtalk', 'robot', NULL, NULL, '新线索', '客户张三', NULL);
-- a short body is kept whole, quotes and newlines escaped
SELECT crm.im_payload('wecom', 'robot', NULL, NULL, 'a "b"', E'line 1\nline 2', NULL);

-- truncation: the body is cut at a character boundary, ends with …, the title stays
-- wecom robot: markdown.content <= 4096 UTF-8 bytes; 12 bytes of title + 1360 × 3 + 3 = 4095
SELECT octet_length(c) AS bytes, octet_length(c) <= 4096 AS fits, right(c, 1) = '…' AS ellipsis,
       c = E'**标题**\n\n' || repeat('中', 1360) || '…' AS exact
  FROM (SELECT crm.im_payload('wecom', 'robot', NULL, NULL, '标题', repeat('中', 5000), NULL)::json
               -> 'markdown' ->> 'content') p(c);
-- wecom app: the same field and limit
SELECT octet_length(c) AS bytes, c = E'**标题**\n\n' || repeat('中', 1360) || '…' AS exact
  FROM (SELECT crm.im_payload('wecom', 'app', 'zhangsan', '1000002', '标题', repeat('中', 5000), 'k')::json
               -> 'markdown' ->> 'content') p(c);
-- dingtalk app: msg <= 2048 bytes, measured with ", " and ": " separators (jsonb's text form)
SELECT octet_length((p::jsonb -> 'msg')::text) AS msg_bytes, octet_length((p::jsonb -> 'msg')::text) <= 2048 AS fits,
       right(p::json -> 'msg' -> 'markdown' ->> 'text', 1) = '…' AS ellipsis,
       p::json -> 'msg' -> 'markdown' ->> 'title' AS title,
       p::json -> 'msg' -> 'markdown' ->> 'text' = E'### 标题\n\n' || repeat('中', 654) || '…' AS exact
  FROM crm.im_payload('dingtalk', 'app', 'u1', '123456', '标题', repeat('中', 5000), NULL) p;
-- feishu app: the whole body <= 150 KB; the text sits in a JSON string inside the JSON,
-- so a quote costs 4 bytes (\\\") and 中 3
SELECT octet_length(p) AS bytes, octet_length(p) <= 150 * 1024 AS fits,
       right((p::json ->> 'content')::json ->> 'text', 1) = '…' AS ellipsis,
       (p::json ->> 'content')::json ->> 'text' = E'标题\n' || repeat('中"', 21930) || '…' AS exact
  FROM crm.im_payload('feishu', 'app', 'ou_x', NULL, '标题', repeat('中"', 30000), 'k') p;
-- feishu robot: the body plus the 79 bytes of timestamp and sign the worker adds <= 20 KB
SELECT octet_length(p) + 79 AS signed_bytes, octet_length(p) + 79 <= 20 * 1024 AS fits,
       right(p::json -> 'content' ->> 'text', 1) = '…' AS ellipsis
  FROM crm.im_payload('feishu', 'robot', NULL, NULL, '标题', repeat('中', 8000), NULL) p;
-- dingtalk robot: the body <= 20000 bytes
SELECT octet_length(p) AS bytes, octet_length(p) <= 20000 AS fits,
       right(p::json -> 'markdown' ->> 'text', 1) = '…' AS ellipsis
  FROM crm.im_payload('dingtalk', 'robot', NULL, NULL, '标题', repeat('中', 7000), NULL) p;

-- errors
SELECT crm.im_payload('slack', 'robot', NULL, NULL, 't', 'b', NULL);
SELECT crm.im_payload('wecom', 'bot', NULL, NULL, 't', 'b', NULL);
SELECT crm.im_payload('wecom', 'app', NULL, '1000002', 't', 'b', NULL);
SELECT crm.im_payload('feishu', 'app', '', NULL, 't', 'b', NULL);
SELECT crm.im_payload('dingtalk', 'app', 'u1', NULL, 't', 'b', NULL);
SELECT crm.im_payload('wecom', 'app', 'zhangsan', '10x', 't', 'b', NULL);
SELECT crm.im_payload('feishu', 'app', 'ou_x', NULL, 't', 'b', repeat('k', 51));
SELECT crm.im_payload('wecom', 'robot', NULL, NULL, repeat('长', 1400), 'b', NULL);
SELECT crm.im_payload('wecom', 'robot', NULL, NULL, 't', NULL, NULL);
