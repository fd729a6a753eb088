-- wrk script: one valid single submission, POST /v1/scores, with the bearer token in WRK_TOKEN.
-- Used by scripts/compare.sh and scripts/interleave.sh, so both send the same request.
wrk.method = "POST"
wrk.path = "/v1/scores"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")
wrk.body = '{"heroId":"storm","score":9001}'
