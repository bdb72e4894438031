// PostGraphile 4 as an API server would run it in front of crm, for t/011_postgraphile.pl:
//   node serve.js PORT JWT_SECRET DEFAULT_ROLE
// connects as libpq's PGHOST/PGPORT/PGDATABASE/PGUSER say, builds its schema from crm
// (exiting if it cannot), then serves /graphql on 127.0.0.1:PORT and prints "ready PORT".
// Each request's JWT (claims role and employee_id, audience "postgraphile") becomes
// SET LOCAL ROLE and the setting jwt.claims.employee_id; without one, DEFAULT_ROLE.
'use strict';
const http = require('http');
const { postgraphile } = require('postgraphile');

const [port, jwtSecret, defaultRole] = process.argv.slice(2);
const handler = postgraphile({}, 'crm', {
	jwtSecret,
	pgDefaultRole: defaultRole,
	retryOnInitFail: false,
	disableQueryLog: true,
	includeExtensionResources: true,   // crm's tables and functions belong to the extension
});
handler.getGraphQLSchema().then(() => {
	http.createServer(handler).listen(Number(port), '127.0.0.1', () => console.log(`ready ${port}`));
}, (e) => {
	console.error(`schema failed: ${e.message}`);
	process.exit(1);
});
// the test holds our standard input: when it ends, so do we
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
