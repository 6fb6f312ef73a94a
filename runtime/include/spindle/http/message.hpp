// HTTP/1.1 messages as plain values: Headers, Request, Response, and the http error codes.
//
// These types carry what a handler or a client call needs and nothing of the wire format: the
// parsing and serialising is Boost.Beast's, inside the library (src/http/), so this header
// includes neither Boost nor any socket header.
//
// Headers keep insertion order and duplicates (Set-Cookie may repeat); names compare
// case-insensitively (RFC 9110 5.1), values are kept as given. A Headers object is a value:
// copy it freely; it is not thread-safe to modify while another fiber reads it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <spindle/context.hpp>

namespace spindle::http {

// Outcomes of the HTTP layer that are not transport errors (those are net::errc / system).
enum class errc : int {
  server_closed = 1,       // "http: Server closed": serve() after shutdown() or close()
  bad_url = 2,             // the client could not parse the URL
  unsupported_scheme = 3,  // only http:// is supported (no TLS)
  bad_response = 4,        // the peer's response did not parse
  response_too_large = 5,  // the response's header or body exceeded the client's limits
};
[[nodiscard]] const std::error_category& error_category() noexcept;
[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// The request ID a client sends as X-Request-ID (when the request has none of its own), and
// that a server binds in each request's context from the X-Request-ID it received, so a
// handler that calls onwards with its request context propagates it.
inline constexpr ContextKey<std::string> kRequestId{"http.request-id"};

class Headers {
 public:
  using Field = std::pair<std::string, std::string>;
  using const_iterator = std::vector<Field>::const_iterator;

  // Appends a field (duplicates allowed).
  void add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }
  // Replaces every field of that name with one.
  void set(std::string_view name, std::string value);
  // The first value of `name`, or "" (Go's Header.Get). Use find() to tell "absent" from "".
  [[nodiscard]] std::string_view get(std::string_view name) const noexcept;
  [[nodiscard]] const std::string* find(std::string_view name) const noexcept;
  [[nodiscard]] bool has(std::string_view name) const noexcept { return find(name) != nullptr; }
  // Removes every field of that name; returns how many.
  std::size_t erase(std::string_view name);

  [[nodiscard]] std::size_t size() const noexcept { return fields_.size(); }
  [[nodiscard]] bool empty() const noexcept { return fields_.empty(); }
  [[nodiscard]] const_iterator begin() const noexcept { return fields_.begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return fields_.end(); }

  // Case-insensitive ASCII comparison of header names.
  [[nodiscard]] static bool name_equals(std::string_view a, std::string_view b) noexcept;

 private:
  std::vector<Field> fields_;
};

struct Request {
  std::string method = "GET";
  std::string target = "/";   // origin-form: path and query ("/a/b?x=1")
  Headers headers;
  std::string body;
  int version = 11;           // 10 or 11
  std::string remote_address; // server side: the peer's "ip:port"

  // The target up to '?' and after it.
  [[nodiscard]] std::string_view path() const noexcept;
  [[nodiscard]] std::string_view query() const noexcept;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  // A response with a text/plain body.
  [[nodiscard]] static Response text(int status, std::string body);
};

// "OK", "Not Found", ...; "" for a code it does not know.
[[nodiscard]] std::string_view status_text(int status) noexcept;

}  // namespace spindle::http

template <>
struct std::is_error_code_enum<spindle::http::errc> : std::true_type {};
