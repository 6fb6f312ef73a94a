// KeyedLimiter: a token bucket per key (per client, per IP, per API key) whose memory stays
// bounded however many distinct keys arrive.
//
//   KeyedLimiter<std::string> per_ip({.limit = 5, .burst = 10});
//   if (!per_ip.allow(remote_addr)) return http_429();
//
// The seed's IPRateLimiter kept a *rate.Limiter per IP in a map forever: a scan from a million
// addresses is a million limiters that are never freed. Here:
//  * a key idle for `idle_ttl` is forgotten. The default idle_ttl is the time an empty bucket
//    takes to refill completely (burst / limit): a key idle that long has a full bucket, which
//    is exactly what a new key gets, so this eviction is lossless (no client gets extra
//    tokens by being forgotten);
//  * forgetting is amortised into the calls: each call examines the two least recently used
//    keys of its shard and drops them if idle, so the idle keys drain at least as fast as new
//    ones arrive, without a background fiber. evict_idle() sweeps everything on demand;
//  * `max_keys` (optional) is a hard cap: past it, the least recently used key of the shard is
//    dropped even if not idle (that client then starts again with a full bucket: the price of
//    a hard memory bound, counted in stats().evicted_capacity).
// Each bucket follows Limiter's allow_n semantics (x/time/rate); a KeyedLimiter only allows
// (no reservations or waits, which would pin keys in memory).
//
// Settings: limit > 0 or kInf, burst > 0 (unless kInf), idle_ttl >= 0 (0: the default above),
// shards 0 (16) or more: else ConfigError. Keys are spread over shards by hash; each shard has
// its own spindle::Mutex, LRU list and hash map.
//
// Thread-safety: every member may be called concurrently. Memory ordering: calls on one key are
// linearised by its shard's lock. Lifetime: plain object; destroy once no call is in progress.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <spindle/mutex.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/rate.hpp>

namespace spindle::patterns {

struct KeyedLimiterSettings {
  Limit limit = 0;              // per key, events per second (> 0 or kInf)
  int burst = 0;                // per key (> 0 unless kInf)
  Duration idle_ttl{};          // forget keys idle this long. 0: burst / limit (lossless)
  std::size_t max_keys = 0;     // hard cap on keys tracked (spread over shards). 0: no cap
  std::size_t shards = 0;       // 0: 16
  const Clock* clock = nullptr; // null: system_clock()
};

struct KeyedLimiterStats {
  std::uint64_t keys = 0;              // tracked now
  std::uint64_t evicted_idle = 0;      // forgotten after idle_ttl (lossless by default)
  std::uint64_t evicted_capacity = 0;  // dropped to respect max_keys
  std::uint64_t allowed = 0;
  std::uint64_t rejected = 0;
};

template <class Key = std::string, class Hash = std::hash<Key>, class KeyEq = std::equal_to<Key>>
class KeyedLimiter {
 public:
  explicit KeyedLimiter(KeyedLimiterSettings s)
      : s_(s), clock_(&clock_or_system(s.clock)), shards_(s.shards == 0 ? 16 : s.shards) {
    if (std::isnan(s_.limit) || s_.limit <= 0) {
      throw ConfigError("patterns: KeyedLimiter: limit must be positive (or kInf)");
    }
    if (s_.limit != kInf && s_.burst <= 0) {
      throw ConfigError("patterns: KeyedLimiter: burst must be positive");
    }
    if (s_.idle_ttl < Duration::zero()) throw ConfigError("patterns: KeyedLimiter: negative idle_ttl");
    if (s_.idle_ttl == Duration::zero() && s_.limit != kInf) {
      // The time to refill from 0 to burst, rounded up so that the bucket is surely full.
      s_.idle_ttl = detail::TokenBucket::duration_from_tokens(s_.burst, s_.limit) + Duration(1);
    }
    if (s_.max_keys != 0) {
      per_shard_cap_ = (s_.max_keys + shards_.size() - 1) / shards_.size();
      if (per_shard_cap_ == 0) per_shard_cap_ = 1;
    }
  }
  KeyedLimiter(const KeyedLimiter&) = delete;
  KeyedLimiter& operator=(const KeyedLimiter&) = delete;

  // allow_n(key, now, 1).
  [[nodiscard]] bool allow(const Key& key) { return allow_n(key, clock_->now(), 1); }

  // Takes n tokens from key's bucket at t if available (a new key starts full). Never blocks.
  // Throws ConfigError for n < 0.
  [[nodiscard]] bool allow_n(const Key& key, TimePoint t, int n) {
    if (n < 0) throw ConfigError("patterns: KeyedLimiter::allow_n: negative n");
    if (s_.limit == kInf) {
      allowed_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    Shard& sh = shard_for(key);
    bool ok;
    {
      std::lock_guard lock(sh.mu);
      auto [it, inserted] = sh.map.try_emplace(key);
      Node& node = it->second;
      if (inserted) {
        node.key = &it->first;
        node.b.tokens = s_.burst;
        node.b.last = t;
        keys_.fetch_add(1, std::memory_order_relaxed);
      } else {
        unlink(sh, node);
      }
      push_front(sh, node);
      if (t > node.seen) node.seen = t;
      ok = node.b.take_if_available(t, n, s_.limit, s_.burst);
      sweep(sh, t, kSweepPerCall, &node);
      while (per_shard_cap_ != 0 && sh.map.size() > per_shard_cap_ && sh.tail != &node) {
        drop(sh, *sh.tail);
        evicted_capacity_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    (ok ? allowed_ : rejected_).fetch_add(1, std::memory_order_relaxed);
    return ok;
  }

  // Tokens key's bucket holds at t (burst for a key not tracked).
  [[nodiscard]] double tokens_at(const Key& key, TimePoint t) {
    if (s_.limit == kInf) return kInf;
    Shard& sh = shard_for(key);
    std::lock_guard lock(sh.mu);
    auto it = sh.map.find(key);
    if (it == sh.map.end()) return s_.burst;
    return it->second.b.advance(t, s_.limit, s_.burst);
  }

  // Whether key is tracked now.
  [[nodiscard]] bool tracked(const Key& key) {
    Shard& sh = shard_for(key);
    std::lock_guard lock(sh.mu);
    return sh.map.find(key) != sh.map.end();
  }

  // Forgets every key idle for idle_ttl at `now`; returns how many. Takes each shard's lock in
  // turn (never two at once).
  std::size_t evict_idle(TimePoint now) {
    std::size_t n = 0;
    for (Shard& sh : shards_) {
      std::lock_guard lock(sh.mu);
      n += sweep(sh, now, SIZE_MAX, nullptr);
    }
    return n;
  }
  std::size_t evict_idle() { return evict_idle(clock_->now()); }

  // Keys tracked now (a racy snapshot).
  [[nodiscard]] std::size_t size() const noexcept {
    return static_cast<std::size_t>(keys_.load(std::memory_order_relaxed));
  }
  [[nodiscard]] KeyedLimiterStats stats() const noexcept {
    return {keys_.load(std::memory_order_relaxed), evicted_idle_.load(std::memory_order_relaxed),
            evicted_capacity_.load(std::memory_order_relaxed),
            allowed_.load(std::memory_order_relaxed), rejected_.load(std::memory_order_relaxed)};
  }
  // The idle time after which keys are forgotten (the default filled in).
  [[nodiscard]] Duration idle_ttl() const noexcept { return s_.idle_ttl; }

 private:
  static constexpr std::size_t kSweepPerCall = 2;

  // A key's state; lives in its shard's map (stable address), linked into the shard's LRU list.
  struct Node {
    detail::TokenBucket b;
    TimePoint seen{};          // the latest time the key was used
    Node* prev = nullptr;      // towards the most recently used
    Node* next = nullptr;      // towards the least recently used
    const Key* key = nullptr;  // the map's copy of the key
  };
  struct alignas(64) Shard {
    spindle::Mutex mu;
    std::unordered_map<Key, Node, Hash, KeyEq> map;
    Node* head = nullptr;  // most recently used
    Node* tail = nullptr;  // least recently used
  };

  Shard& shard_for(const Key& key) { return shards_[Hash{}(key) % shards_.size()]; }

  static void unlink(Shard& sh, Node& n) noexcept {
    (n.prev != nullptr ? n.prev->next : sh.head) = n.next;
    (n.next != nullptr ? n.next->prev : sh.tail) = n.prev;
    n.prev = n.next = nullptr;
  }
  static void push_front(Shard& sh, Node& n) noexcept {
    n.prev = nullptr;
    n.next = sh.head;
    if (sh.head != nullptr) sh.head->prev = &n;
    sh.head = &n;
    if (sh.tail == nullptr) sh.tail = &n;
  }
  void drop(Shard& sh, Node& n) {
    unlink(sh, n);
    sh.map.erase(*n.key);  // n (and the key it points to) are gone after this
    keys_.fetch_sub(1, std::memory_order_relaxed);
  }
  // Drops up to `max` idle keys from the LRU end, never `keep`. Under sh.mu.
  std::size_t sweep(Shard& sh, TimePoint now, std::size_t max, const Node* keep) {
    std::size_t n = 0;
    while (n < max && sh.tail != nullptr && sh.tail != keep && now - sh.tail->seen >= s_.idle_ttl) {
      drop(sh, *sh.tail);
      ++n;
    }
    if (n != 0) evicted_idle_.fetch_add(n, std::memory_order_relaxed);
    return n;
  }

  KeyedLimiterSettings s_;
  const Clock* clock_;
  std::vector<Shard> shards_;
  std::size_t per_shard_cap_ = 0;
  std::atomic<std::uint64_t> keys_{0};
  std::atomic<std::uint64_t> evicted_idle_{0};
  std::atomic<std::uint64_t> evicted_capacity_{0};
  std::atomic<std::uint64_t> allowed_{0};
  std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace spindle::patterns
