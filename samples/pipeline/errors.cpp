#include "errors.hpp"

namespace pipeline {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pipeline"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::injected: return "injected failure";
      case errc::http_status: return "unexpected HTTP status";
      case errc::http_unavailable: return "origin unavailable";
      case errc::bad_document: return "bad document";
      case errc::io_error: return "I/O error";
      case errc::database: return "database error";
    }
    return "unknown pipeline error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace pipeline
