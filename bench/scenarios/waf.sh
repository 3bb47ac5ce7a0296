# The WAF's cost and effect, in one run on this machine:
#   - throughput of POST /v1/payment_intents (confirm, tokenized card, a JSON body,
#     unique idempotency keys) with [waf] mode = block and mode = off;
#   - nginx + ModSecurity 3 + OWASP CRS (Debian packages, paranoia level 1) in front
#     of a static 200 upstream, driven with the same JSON POST: the cost of the
#     reference WAF alone (its upstream costs next to nothing);
#   - the corpus (tests/waf-corpus) through payd and through nginx + ModSecurity:
#     attack and benign requests blocked.
# Targets: the WAF costs <= 10 % of payd's throughput; payd with the WAF on is >= 15x
# nginx + ModSecurity + CRS; >= 90 % of attacks and 0 benign requests blocked.

# start_nginx_modsec NAME CERT KEY: TLS nginx with ModSecurity + CRS on, proxying to a
# static 200 JSON upstream (in the same nginx); sets NGINX_PORT
start_nginx_modsec() {
  local name=$1 cert=$2 key=$3 dir=$BENCH_TMP/modsec-$1
  NGINX_PORT=$(free_port)
  local up
  up=$(free_port)
  mkdir -p "$dir/logs"
  cat >"$dir/modsec.conf" <<MSC
Include /etc/nginx/modsecurity.conf
SecRuleEngine On
SecAuditEngine Off
SecResponseBodyAccess Off
Include /etc/modsecurity/crs/crs-setup.conf
Include /etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf
Include /usr/share/modsecurity-crs/rules/*.conf
Include /etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf
MSC
  cat >"$dir/nginx.conf" <<NGX
load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;
worker_processes $BENCH_THREADS;
error_log $dir/logs/error.log error;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  upstream app { server 127.0.0.1:$up; keepalive 64; }
  server {
    listen 127.0.0.1:$up;
    keepalive_requests 1000000;
    location / { default_type application/json; return 200 '{"object":"payment_intent"}'; }
  }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2;
    ssl_certificate $cert; ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    modsecurity on;
    modsecurity_rules_file $dir/modsec.conf;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
  nginx -c "$dir/nginx.conf" -g 'daemon off;' &
  BENCH_PIDS+=($!)
  NGINX_PID=$!
  wait_http "https://127.0.0.1:$NGINX_PORT/" -k
}

# payment_json AMOUNT: the JSON body of a confirmed payment with the bench card
payment_json() {
  echo '{"amount":'"$1"',"currency":"usd","confirm":true,"payment_method":"'"$BENCH_PM"'","description":"Order 1042: 2 x espresso beans"}'
}

# waf_payd_run MODE: starts payd with [waf] mode = MODE and measures payments; sets
# WAF_RESULT (payments, "rps p50 p99"), WAF_EDGE (the edge path) and WAF_KEY; leaves payd running
waf_payd_run() {
  start_payd_with_card "waf-$1" --set waf.mode="$1"
  bench_post_lua "$BENCH_TMP/waf-$1.lua" "$BENCH_SK" application/json "$(payment_json 1999)"
  WAF_RESULT=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/waf-$1.lua")
  # the same request through TLS, HTTP, auth, usage plan, decoding and the WAF, refused
  # by the schema (amount 0) so no storage is involved: the WAF's cost without the
  # noise of the disk, and like for like with ModSecurity in front of a static upstream
  bench_post_lua "$BENCH_TMP/waf-edge-$1.lua" "$BENCH_SK" application/json "$(payment_json 0)"
  WAF_EDGE=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/waf-edge-$1.lua" 2>/dev/null)
  WAF_KEY=$BENCH_SK
}

scenario_waf() {
  local on off edge edge_off modsec corpus_payd corpus_modsec
  waf_payd_run block
  on=$WAF_RESULT
  edge=$WAF_EDGE
  corpus_payd=$(bench/waf_corpus.py "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" "$WAF_KEY")
  local cert=$PAYD_DIR/tls/server.pem key=$PAYD_DIR/tls/server-key.pem
  stop_payd
  waf_payd_run off
  off=$WAF_RESULT
  edge_off=$WAF_EDGE
  stop_payd
  start_nginx_modsec bench "$cert" "$key"
  bench_post_lua "$BENCH_TMP/waf-modsec.lua" sk_test_x application/json "$(payment_json 1999)"
  modsec=$(run_wrk "https://127.0.0.1:$NGINX_PORT/v1/payment_intents" -s "$BENCH_TMP/waf-modsec.lua")
  corpus_modsec=$(bench/waf_corpus.py "https://127.0.0.1:$NGINX_PORT/v1/payment_intents")
  stop_nginx
  read -r on_rps on_p50 on_p99 <<<"$on"
  read -r off_rps off_p50 off_p99 <<<"$off"
  read -r m_rps m_p50 m_p99 <<<"$modsec"
  read -r e_rps e_p50 e_p99 <<<"$edge"
  read -r eo_rps eo_p50 eo_p99 <<<"$edge_off"
  printf '%-46s %12s %9s %9s\n' "waf" "req/s" "p50 ms" "p99 ms"
  printf '%-46s %12s %9s %9s\n' "  payd payments, waf block" "$on_rps" "$on_p50" "$on_p99"
  printf '%-46s %12s %9s %9s\n' "  payd payments, waf off" "$off_rps" "$off_p50" "$off_p99"
  printf '%-46s %12s %9s %9s\n' "  payd edge + waf, refused by the schema (400)" "$e_rps" "$e_p50" "$e_p99"
  printf '%-46s %12s %9s %9s\n' "  payd edge, waf off, refused by the schema" "$eo_rps" "$eo_p50" "$eo_p99"
  printf '%-46s %12s %9s %9s\n' "  nginx + ModSecurity + CRS -> static 200" "$m_rps" "$m_p50" "$m_p99"
  printf '  waf cost (target <= 10 %%): %s %% of payments throughput (disk noise dominates), %s %% on the edge path\n' \
    "$(awk -v a="$on_rps" -v b="$off_rps" 'BEGIN { printf "%.1f", (b - a) * 100 / b }')" \
    "$(awk -v a="$e_rps" -v b="$eo_rps" 'BEGIN { printf "%.1f", (b - a) * 100 / b }')"
  printf '  payd payments with waf / nginx+ModSecurity: %sx; payd edge+waf / nginx+ModSecurity: %sx (target >= 15x)\n' \
    "$(ratio "$on_rps" "$m_rps")" "$(ratio "$e_rps" "$m_rps")"
  read -r _ pa_b pa_t pa_pct <<<"$(grep '^attack' <<<"$corpus_payd")"
  read -r _ pb_b pb_t pb_pct <<<"$(grep '^benign' <<<"$corpus_payd")"
  read -r _ ma_b ma_t ma_pct <<<"$(grep '^attack' <<<"$corpus_modsec")"
  read -r _ mb_b mb_t mb_pct <<<"$(grep '^benign' <<<"$corpus_modsec")"
  printf '  corpus, payd:                 attacks blocked %s/%s (%s %%), benign blocked %s/%s (%s %%)\n' \
    "$pa_b" "$pa_t" "$pa_pct" "$pb_b" "$pb_t" "$pb_pct"
  printf '  corpus, nginx + ModSecurity:  attacks blocked %s/%s (%s %%), benign blocked %s/%s (%s %%)\n' \
    "$ma_b" "$ma_t" "$ma_pct" "$mb_b" "$mb_t" "$mb_pct"
}
