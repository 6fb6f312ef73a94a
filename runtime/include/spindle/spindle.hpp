// spindle: every public header of the runtime. Include the individual headers to keep builds
// lean; this one is for examples and quick programs. (The GoogleTest helpers in
// <spindle/testing/...> are not included: they need GoogleTest.)
#pragma once

#include <spindle/chan.hpp>
#include <spindle/clock.hpp>
#include <spindle/cond.hpp>
#include <spindle/context.hpp>
#include <spindle/debug.hpp>
#include <spindle/errgroup.hpp>
#include <spindle/error.hpp>
#include <spindle/errors.hpp>
#include <spindle/http/client.hpp>
#include <spindle/http/message.hpp>
#include <spindle/http/server.hpp>
#include <spindle/mutex.hpp>
#include <spindle/net/blocking.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/once.hpp>
#include <spindle/runtime.hpp>
#include <spindle/rwmutex.hpp>
#include <spindle/select.hpp>
#include <spindle/semaphore.hpp>
#include <spindle/synctest.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/time.hpp>
#include <spindle/trace.hpp>
#include <spindle/waitgroup.hpp>
