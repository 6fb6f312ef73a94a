// The seed's "Advanced Channel Patterns" (or-done, tee, queue) written with spindle, line for
// line against the Go originals. runtime/src/chan/README-snippet.md quotes this file, so what
// the README shows compiles and is tested.
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <utility>
#include <variant>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using Done = std::monostate;  // Go's struct{}; Context::done() is a Receiver<std::monostate>

// Go's `defer close(ch)`.
template <class T>
struct DeferClose {
  Chan<T> ch;
  ~DeferClose() { ch.close(); }
};

// snippet:or_done
template <class T>
Receiver<T> or_done(Receiver<Done> done, Receiver<T> c) {        // func OrDone(done <-chan struct{}, c <-chan interface{}) <-chan interface{} {
  Chan<T> val_stream(0);                                         //     valStream := make(chan interface{})
  go([=] {                                                       //     go func() {
    DeferClose defer{val_stream};                                //         defer close(valStream)
    for (;;) {                                                   //         for {
      const bool stop = select(                                  //             select {
          case_recv(done, [] { return true; }),                  //             case <-done: return
          case_recv(c, [&](std::optional<T> v) {                 //             case v, ok := <-c:
            if (!v) return true;                                 //                 if !ok { return }
            select(case_send(val_stream, std::move(*v)),         //                 select { case valStream <- v:
                   case_recv(done));                             //                 case <-done: }
            return false;                                        //
          }));                                                   //             }
      if (stop) return;                                          //
    }                                                            //         }
  });                                                            //     }()
  return val_stream;                                             //     return valStream
}                                                                // }
// snippet:end

// snippet:tee
template <class T>
std::pair<Receiver<T>, Receiver<T>> tee(Receiver<Done> done, Receiver<T> in) {  // func Tee(done <-chan struct{}, in <-chan interface{}) (_, _ <-chan interface{}) {
  Chan<T> out1(0);                                               //     out1 := make(chan interface{})
  Chan<T> out2(0);                                               //     out2 := make(chan interface{})
  go([=] {                                                       //     go func() {
    DeferClose d1{out1};                                         //         defer close(out1)
    DeferClose d2{out2};                                         //         defer close(out2)
    for (T val : or_done(done, in)) {                            //         for val := range OrDone(done, in) {
      Chan<T> o1 = out1, o2 = out2;                              //             var out1, out2 = out1, out2
      for (int i = 0; i < 2; i++) {                              //             for i := 0; i < 2; i++ {
        const bool stop = select(                                //                 select {
            case_recv(done, [] { return true; }),                //                 case <-done: return
            case_send(o1, T(val), [&] { o1 = {}; return false; }),  //                 case out1 <- val: out1 = nil
            case_send(o2, T(val), [&] { o2 = {}; return false; }));  //                 case out2 <- val: out2 = nil
        if (stop) return;                                        //                 }
      }                                                          //             }
    }                                                            //         }
  });                                                            //     }()
  return {out1, out2};                                           //     return out1, out2
}                                                                // }
// snippet:end

// snippet:queue
template <class T>
std::pair<Receiver<T>, std::function<void(T)>> queue(Receiver<Done> done) {  // func Queue(done <-chan struct{}) (<-chan interface{}, func(interface{})) {
  Chan<T> in(0);                                                 //     in := make(chan interface{})
  Chan<T> out(0);                                                //     out := make(chan interface{})
  go([=] {                                                       //     go func() {
    std::deque<T> queue;                                         //         var queue []interface{}
    T next{};                                                    //         var next interface{}
    Chan<T> out_ch;                                              //         var outCh chan interface{}   (nil)
    DeferClose defer{out};                                       //         defer close(out)
    for (;;) {                                                   //         for {
      if (queue.empty()) {                                       //             if len(queue) == 0 {
        out_ch = {};                                             //                 outCh = nil
      } else {                                                   //             } else {
        out_ch = out;                                            //                 outCh = out
        next = queue.front();                                    //                 next = queue[0]
      }                                                          //             }
      const bool stop = select(                                  //             select {
          case_recv(done, [] { return true; }),                  //             case <-done: return
          case_recv(in, [&](std::optional<T> v) {                //             case v, ok := <-in:
            if (!v) return true;                                 //                 if !ok { return }
            queue.push_back(std::move(*v));                      //                 queue = append(queue, v)
            return false;                                        //
          }),                                                    //
          case_send(out_ch, next, [&] {                          //             case outCh <- next:
            queue.pop_front();                                   //                 queue = queue[1:]
            return false;                                        //
          }));                                                   //             }
      if (stop) return;                                          //
    }                                                            //         }
  });                                                            //     }()
  return {out, [in](T v) { in.send(std::move(v)); }};            //     return out, func(v interface{}) { in <- v }
}                                                                // }
// snippet:end

FIBER_TEST(SeedPatterns, OrDone) {
  Chan<Done> done(0);
  Chan<int> c(0);
  go([c] {
    for (int i = 0; i < 10; ++i) c.send(i);
    c.close();
  });
  int sum = 0;
  for (int v : or_done<int>(done, c)) sum += v;
  EXPECT_EQ(sum, 45);
  // Closing done ends the stream even though c never closes.
  Chan<int> never(0);
  auto s = or_done<int>(done, never);
  done.close();
  EXPECT_EQ(s.recv(), std::nullopt);
}

FIBER_TEST(SeedPatterns, Tee) {
  Chan<Done> done(0);
  Chan<int> in(0);
  go([in] {
    for (int i = 1; i <= 100; ++i) in.send(i);
    in.close();
  });
  auto [a, b] = tee<int>(done, in);
  Chan<int> sums(2);
  go([a = a, sums] {
    int s = 0;
    for (int v : a) s += v;
    sums.send(s);
  });
  int s = 0;
  for (int v : b) s += v;
  EXPECT_EQ(s, 5050);
  EXPECT_EQ(*sums.recv(), 5050);
  done.close();
}

FIBER_TEST(SeedPatterns, QueueIsUnboundedAndFifo) {
  Chan<Done> done(0);
  auto [out, push] = queue<int>(done);
  for (int i = 0; i < 1000; ++i) push(i);  // never blocks for long: the queue grows
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(*out.recv(), i);
  done.close();
  EXPECT_EQ(out.recv(), std::nullopt);  // closed by the deferred close
}

}  // namespace
}  // namespace spindle
