-- wrk script of regctl-bench (internal/bench). Each line of the file
-- named by BENCH_REQUESTS is one request, tab-separated:
--
--   METHOD  PATH  AUTHORIZATION  BODY  CLIENT      ("-" for none)
--
-- A BODY is sent as application/x-www-form-urlencoded; CLIENT as
-- X-Forwarded-For (regctl serve trusts it from 127.0.0.1 here). Of BENCH_THREADS
-- threads, thread t sends lines t+1, t+1+T, t+1+2T, ... and starts over
-- at the end. Every request is formatted once, in init, so that the load
-- generator spends as little CPU as possible: it shares the machine with
-- the server it measures. done() writes the totals and the latency
-- percentiles (microseconds) as one JSON object to BENCH_RESULT.

local counter = 0

function setup(thread)
	thread:set("tid", counter)
	counter = counter + 1
end

function init(args)
	local nthreads = tonumber(os.getenv("BENCH_THREADS"))
	local n = 0
	reqs = {}
	for line in io.lines(os.getenv("BENCH_REQUESTS")) do
		if n % nthreads == tid then
			local method, path, auth, body, client = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
			local headers = {}
			if auth ~= "-" then
				headers["Authorization"] = auth
			end
			if client ~= "-" then
				headers["X-Forwarded-For"] = client
			end
			if body == "-" then
				body = nil
			else
				headers["Content-Type"] = "application/x-www-form-urlencoded"
			end
			reqs[#reqs + 1] = wrk.format(method, path, headers, body)
		end
		n = n + 1
	end
	if #reqs == 0 then
		error("thread " .. tid .. " has no request lines")
	end
	idx = 0
end

function request()
	idx = idx % #reqs + 1
	return reqs[idx]
end

function done(summary, latency, requests)
	local e = summary.errors
	local f = assert(io.open(os.getenv("BENCH_RESULT"), "w"))
	f:write(string.format(
		'{"duration_us":%d,"requests":%d,"bytes":%d,' ..
		'"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
		'"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
		summary.duration, summary.requests, summary.bytes,
		e.connect, e.read, e.write, e.status, e.timeout,
		latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency.max, latency.mean))
	f:close()
end
