// spindle::patterns: the catalogue of Go concurrency patterns, fiber-aware (patterns/README.md).
// Includes every pattern; include the individual headers to pull in only what you use.
#pragma once

#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/result.hpp>
#include <spindle/patterns/clock.hpp>

#include <spindle/patterns/bounded.hpp>
#include <spindle/patterns/bulkhead.hpp>
#include <spindle/patterns/circuit_breaker.hpp>
#include <spindle/patterns/combinators.hpp>
#include <spindle/patterns/debounce.hpp>
#include <spindle/patterns/heartbeat.hpp>
#include <spindle/patterns/keyed_limiter.hpp>
#include <spindle/patterns/pipeline.hpp>
#include <spindle/patterns/rate.hpp>
#include <spindle/patterns/retry.hpp>
#include <spindle/patterns/shutdown.hpp>
#include <spindle/patterns/ticker_limiter.hpp>
#include <spindle/patterns/timeout.hpp>
#include <spindle/patterns/unbounded_queue.hpp>
#include <spindle/patterns/worker_pool.hpp>
