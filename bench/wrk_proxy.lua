-- wrk script: send absolute-form targets to the proxy, as curl/httpx do for http:// URLs.
-- Set ORIGIN (e.g. http://127.0.0.1:8080) and TARGET_PATH (e.g. /bytes/1024) in the
-- environment; CLOSE=1 adds "Connection: close" so every request costs a new handshake.
local origin = os.getenv("ORIGIN") or "http://127.0.0.1:8080"
local path = os.getenv("TARGET_PATH") or "/bytes/1024"
local close = os.getenv("CLOSE") == "1"

wrk.method = "GET"
wrk.path = origin .. path
if close then
  wrk.headers["Connection"] = "close"
end

-- Host is rebuilt by the proxy from the URI; send the origin's anyway, as clients do.
wrk.headers["Host"] = origin:gsub("^http://", "")

request = function()
  return wrk.format(nil, wrk.path)
end
