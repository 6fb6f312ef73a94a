// Descriptor counting for leak checks in tests.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <string>
#include <string_view>

namespace spindle::testing {

// Open descriptors of this process, except those on /proc (the one opendir uses here, and the
// /proc/self/maps that glibc's pthread_getattr_np opens briefly while a worker thread starts).
// A descriptor that is closed between readdir and readlink (such a transient one, on another
// thread) is not counted.
inline int open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string path = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t len = ::readlink(path.c_str(), target, sizeof target - 1);
    if (len <= 0) continue;  // gone already
    if (std::string_view(target, static_cast<std::size_t>(len)).starts_with("/proc/")) continue;
    ++n;
  }
  ::closedir(d);
  return n;
}

// "fd -> target" for every open descriptor, to show which one leaked when counts differ.
inline std::string fd_list() {
  std::string out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string path = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    out += std::string(e->d_name) + " -> " + (n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?") + "\n";
  }
  ::closedir(d);
  return out;
}

}  // namespace spindle::testing
