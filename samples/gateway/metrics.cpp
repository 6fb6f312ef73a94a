// Prometheus text rendering (see metrics.hpp).
#include "metrics.hpp"

#include <charconv>
#include <mutex>

#include <fmt/format.h>

namespace gateway {

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

CounterVec::CounterVec(std::string name, std::string help, std::vector<std::string> labels)
    : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}

void CounterVec::inc(const std::vector<std::string>& values, std::uint64_t n) {
  std::lock_guard lock(mu_);
  values_[values] += n;
}

std::uint64_t CounterVec::get(const std::vector<std::string>& values) const {
  std::lock_guard lock(mu_);
  auto it = values_.find(values);
  return it == values_.end() ? 0 : it->second;
}

std::uint64_t CounterVec::sum() const {
  std::lock_guard lock(mu_);
  std::uint64_t s = 0;
  for (const auto& [k, v] : values_) s += v;
  return s;
}

void CounterVec::render(std::string& out) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", name_, help_, name_);
  std::lock_guard lock(mu_);
  for (const auto& [values, n] : values_) {
    out += name_;
    out += '{';
    for (std::size_t i = 0; i < labels_.size(); ++i) {
      if (i != 0) out += ',';
      out += fmt::format("{}=\"{}\"", labels_[i], escape_label(values[i]));
    }
    out += fmt::format("}} {}\n", n);
  }
}

void render_gauge(std::string& out, std::string_view name, std::string_view help,
                  const std::vector<GaugeSample>& samples) {
  out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", name, help, name);
  for (const GaugeSample& s : samples) {
    out += name;
    if (!s.labels.empty()) {
      out += '{';
      for (std::size_t i = 0; i < s.labels.size(); ++i) {
        if (i != 0) out += ',';
        out += fmt::format("{}=\"{}\"", s.labels[i].first, escape_label(s.labels[i].second));
      }
      out += '}';
    }
    out += fmt::format(" {}\n", s.value);
  }
}

double scrape_value(std::string_view body, std::string_view name, std::string_view labels) {
  const std::string key = labels.empty() ? fmt::format("{} ", name) : fmt::format("{}{{{}}} ", name, labels);
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string_view line = body.substr(pos, eol - pos);
    if (line.starts_with(key)) {
      std::string_view num = line.substr(key.size());
      double v = -1;
      auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
      return ec == std::errc{} ? v : -1;
    }
    pos = eol + 1;
  }
  return -1;
}

}  // namespace gateway
