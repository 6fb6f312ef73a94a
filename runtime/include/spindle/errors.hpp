// Typed exceptions for misuse that Go answers with a panic.
//
// Expected outcomes (a closed channel, a timeout, a cancelled context) are values, never
// exceptions. What is thrown here is a bug in the caller, worded as Go words it so that people
// coming from Go recognise it: "send on closed channel", "sync: negative WaitGroup counter".
#pragma once

#include <stdexcept>
#include <string>

namespace spindle {

// Base of every misuse spindle reports by throwing (Go's panic).
class Panic : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// A call that needs a running spindle runtime was made outside one, or a second runtime was
// started while one runs.
class RuntimeError : public Panic {
 public:
  using Panic::Panic;
};

// Misuse of a sync primitive: negative WaitGroup counter, unlock of an unlocked Mutex, ...
class SyncError : public Panic {
 public:
  using Panic::Panic;
};

}  // namespace spindle
