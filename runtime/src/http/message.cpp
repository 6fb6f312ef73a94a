// Headers, Request, Response helpers and the http error category (spindle/http/message.hpp).
#include <spindle/http/message.hpp>

#include <algorithm>

namespace spindle::http {

namespace {

class HttpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "spindle.http"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::server_closed: return "http: Server closed";
      case errc::bad_url: return "http: malformed URL";
      case errc::unsupported_scheme: return "http: unsupported protocol scheme";
      case errc::bad_response: return "http: malformed response";
      case errc::response_too_large: return "http: response exceeds the client's limits";
    }
    return "unknown spindle.http error";
  }
};

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

const std::error_category& error_category() noexcept {
  static const HttpCategory category;
  return category;
}

bool Headers::name_equals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

void Headers::set(std::string_view name, std::string value) {
  auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return name_equals(f.first, name); });
  if (it == fields_.end()) {
    fields_.emplace_back(std::string(name), std::move(value));
    return;
  }
  it->second = std::move(value);
  fields_.erase(std::remove_if(it + 1, fields_.end(), [&](const Field& f) { return name_equals(f.first, name); }),
                fields_.end());
}

const std::string* Headers::find(std::string_view name) const noexcept {
  for (const Field& f : fields_) {
    if (name_equals(f.first, name)) return &f.second;
  }
  return nullptr;
}

std::string_view Headers::get(std::string_view name) const noexcept {
  const std::string* v = find(name);
  return v == nullptr ? std::string_view() : std::string_view(*v);
}

std::size_t Headers::erase(std::string_view name) {
  const auto before = fields_.size();
  fields_.erase(std::remove_if(fields_.begin(), fields_.end(), [&](const Field& f) { return name_equals(f.first, name); }),
                fields_.end());
  return before - fields_.size();
}

std::string_view Request::path() const noexcept {
  const std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const noexcept {
  const std::string_view t = target;
  const auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.add("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

std::string_view status_text(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

}  // namespace spindle::http
