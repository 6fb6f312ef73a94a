// ClientLimiter (see limiter.hpp).
#include "limiter.hpp"

#include <cmath>

namespace gateway {

namespace patterns = spindle::patterns;

ClientLimiter::ClientLimiter(double rate, int burst, std::chrono::nanoseconds idle_ttl, const patterns::Clock& clock)
    : rate_(rate),
      clock_(clock),
      limiter_({.limit = rate, .burst = burst, .idle_ttl = idle_ttl, .clock = &clock}) {}

std::string ClientLimiter::client_key(const spindle::http::Request& req) {
  if (const std::string* key = req.headers.find("X-API-Key"); key != nullptr && !key->empty()) {
    return "key:" + *key;
  }
  // remote_address is "ip:port" or "[v6]:port": drop the port.
  std::string_view addr = req.remote_address;
  if (const auto colon = addr.rfind(':'); colon != std::string_view::npos) addr = addr.substr(0, colon);
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  return "ip:" + std::string(addr);
}

ClientLimiter::Decision ClientLimiter::allow(const std::string& key) {
  const spindle::TimePoint now = clock_.now();
  if (limiter_.allow_n(key, now, 1)) return {true, {}};
  // Refused: the next token is due after (1 - tokens) / rate.
  const double missing = 1.0 - limiter_.tokens_at(key, now);
  const double secs = missing <= 0 ? 0 : missing / rate_;
  return {false, std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(secs * 1e9)))};
}

}  // namespace gateway
