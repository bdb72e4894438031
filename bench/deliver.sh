# Sourced by bench/run.sh with the bench cluster up: delivery throughput.
# The notification worker sends $deliver_n robot messages to the fake IM server
# (test/fake_im.py, rate limits off) against ab (apache2-utils) posting the same
# body $deliver_n times to the same fake over as many keep-alive connections as
# the worker opens to one host (16).  crm's time runs from resuming the paused
# worker, with the notifications enqueued, until the last delivery is recorded
# sent: expansion, claims, HTTP and the recording.  Prints, like the SQL benches,
#   deliver: crm <median>s  baseline <median>s  ratio <crm/baseline>
# where a ratio of at most 2 is at least half of ab's throughput.

deliver_n=5000

deliver_bench() {
	local dir="$top/tmp/bench" port out url body crm=() baseline=() i t
	out="$dir/fake.out"
	echo '{"wecom": {"bench": {}}, "rate_limits": false}' > "$dir/fake.json"
	python3 "$top/test/fake_im.py" --port 0 --config "$dir/fake.json" > "$out" 2> "$dir/fake.log" &
	local fake=$!
	for _ in $(seq 50); do grep -q '^ready' "$out" && break; sleep 0.1; done
	port=$(awk '/^ready/ { print $2 }' "$out")
	[ -n "$port" ] || { log "deliver: the fake IM server did not start"; kill $fake; return 1; }
	url="http://127.0.0.1:$port/cgi-bin/webhook/send?key=bench"

	cluster_psql -d crm_bench -q <<-SQL
		UPDATE crm.im_channel SET enabled = false;
		INSERT INTO crm.im_channel (name, platform, kind, webhook_url, api_base, rate_per_minute, events)
		VALUES ('bench robot', 'wecom', 'robot', '$url', 'http://127.0.0.1:$port', 1000000, '{transfer.received}');
	SQL
	# the body the worker sends for the first message, for ab to send every time
	cluster_psql -d crm_bench -At -c "SELECT crm.im_payload('wecom', 'robot', NULL, NULL,
		(SELECT name FROM crm.employee ORDER BY id LIMIT 1) || ' · bench 1', 'delivery throughput', NULL)" > "$dir/body.json"

	for ((i = 1; i <= reps; i++)); do
		cluster_psql -d crm_bench -q <<-SQL
			UPDATE crm.settings SET im_paused = true;
			SELECT crm.notify(ARRAY[(SELECT min(id) FROM crm.employee)], 'transfer.received', 'bench ' || g,
			                  'delivery throughput') FROM generate_series(1, $deliver_n) g \g /dev/null
		SQL
		t=$(cluster_psql -d crm_bench <<-'SQL' | awk '/^Time: / { ms += $2 } END { printf "%.6f\n", ms / 1000 }'
			\timing on
			UPDATE crm.settings SET im_paused = false;
			DO $$
			BEGIN
				LOOP
					EXIT WHEN NOT EXISTS (SELECT FROM crm.notification WHERE im_pending)
					      AND NOT EXISTS (SELECT FROM crm.im_delivery WHERE status IN ('pending', 'failed'));
					PERFORM pg_sleep(0.005);
				END LOOP;
			END $$;
		SQL
		)
		crm+=("$t")
		t=$(ab -q -k -n "$deliver_n" -c 16 -p "$dir/body.json" -T 'application/json; charset=utf-8' "$url" |
			awk '/^Time taken for tests:/ { t = $5 } /^(Failed|Non-2xx)/ && $NF != 0 { bad = 1 }
			     END { if (bad || !t) exit 1; print t }') || { log "deliver: ab saw failures"; kill $fake; return 1; }
		baseline+=("$t")
		log "deliver: run $i of $reps: crm ${crm[-1]}s, baseline ${baseline[-1]}s"
	done
	cluster_psql -d crm_bench -At -c "SELECT format('deliver: %s sent, %s not', count(*) FILTER (WHERE status = 'sent'),
		count(*) FILTER (WHERE status <> 'sent')) FROM crm.im_delivery" >&2
	kill $fake
	awk -v c="$(median "${crm[@]}")" -v b="$(median "${baseline[@]}")" \
		'BEGIN { printf "deliver: crm %.4fs  baseline %.4fs  ratio %.2f\n", c, b, c / b }'
}
