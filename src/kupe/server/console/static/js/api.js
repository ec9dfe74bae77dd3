// The console's one way to the Kupe JSON API: same origin, the session cookie, the page's
// CSRF token on writes, and errors carrying the server's message, code, field and request id.

const TENANT = document.body.dataset.tenant || "";
const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";
const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export class ApiError extends Error {
  constructor(status, body, requestId) {
    super((body && body.error) || `The server answered ${status}`);
    this.status = status;
    this.code = (body && body.code) || "";
    this.field = (body && body.field) || "";
    this.requestId = requestId || "";
  }
}

export function tenantPath(path = "") {
  return `/api/v1/tenants/${encodeURIComponent(TENANT)}${path}`;
}

export function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// fetch() with Kupe's conventions; resolves to {status, data, etag, headers, requestId}
// for 2xx and 304, throws ApiError otherwise (also for a network failure, status 0).
export async function api(method, url, { body, ifMatch, ifNoneMatch, accept, headers } = {}) {
  const sent = { Accept: accept || "application/json", ...(headers || {}) };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  if (WRITES.has(method)) sent["X-CSRF-Token"] = CSRF;
  if (ifMatch) sent["If-Match"] = ifMatch;
  if (ifNoneMatch) sent["If-None-Match"] = ifNoneMatch;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, { error: "The server cannot be reached; check your connection." });
  }
  const requestId = response.headers.get("X-Request-Id") || "";
  if (response.status === 304) {
    return { status: 304, data: null, etag: response.headers.get("ETag"), headers: response.headers, requestId };
  }
  const type = response.headers.get("Content-Type") || "";
  let data = null;
  if (type.includes("json")) {
    data = await response.json().catch(() => null);
  } else if (response.status !== 204) {
    data = await response.text();
  }
  if (!response.ok) {
    if (response.status === 401) sessionEnded();
    throw new ApiError(response.status, data, requestId);
  }
  return { status: response.status, data, etag: response.headers.get("ETag"), headers: response.headers, requestId };
}

// A 401 means the session (or the key behind it) has ended: the page can do nothing more.
function sessionEnded() {
  document.dispatchEvent(new CustomEvent("kupe:signed-out"));
}
