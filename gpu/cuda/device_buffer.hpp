#pragma once

// Owning handles for device memory, pinned host memory, streams and events.
// Every allocation is checked (CUDA_CHECK) and freed in the destructor.

#include <cstddef>
#include <utility>

#include <cuda_runtime_api.h>

#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

/// Device memory of `bytes` bytes (plain cudaMalloc, never managed memory).
class device_buffer {
public:
  device_buffer() = default;

  explicit device_buffer(size_t bytes) {
    resize(bytes);
  }

  device_buffer(device_buffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {
  }

  device_buffer& operator=(device_buffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }

  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;

  ~device_buffer() {
    if (ptr_ != nullptr)
      cudaFree(ptr_);
  }

  /// Reallocates (contents lost) unless `bytes` already fit.
  void reserve(size_t bytes) {
    if (bytes > bytes_)
      resize(bytes);
  }

  /// Frees and allocates exactly `bytes` bytes (contents lost).
  void resize(size_t bytes) {
    if (ptr_ != nullptr)
      CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
    if (bytes > 0)
      CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    bytes_ = bytes;
  }

  template <class T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }

  size_t bytes() const {
    return bytes_;
  }

private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

/// Page-locked host memory, so that async copies really overlap.
class pinned_buffer {
public:
  pinned_buffer() = default;
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;

  pinned_buffer(pinned_buffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

  pinned_buffer& operator=(pinned_buffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }

  ~pinned_buffer() {
    if (ptr_ != nullptr)
      cudaFreeHost(ptr_);
  }

  void reserve(size_t bytes) {
    if (bytes <= bytes_)
      return;
    if (ptr_ != nullptr)
      CUDA_CHECK(cudaFreeHost(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
    CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
    bytes_ = bytes;
  }

  template <class T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }

private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

/// A non-blocking stream.
class stream {
public:
  stream() {
    CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
  }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream() {
    cudaStreamDestroy(s_);
  }
  cudaStream_t get() const {
    return s_;
  }

private:
  cudaStream_t s_ = nullptr;
};

/// Captures what `enqueue` puts on `stream` as a CUDA graph and returns it
/// instantiated (the caller destroys it); a capture that throws is ended and
/// dropped before the exception goes on.
template <class Enqueue>
cudaGraphExec_t capture_graph(cudaStream_t stream, Enqueue enqueue) {
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    cudaStreamEndCapture(stream, &broken);
    if (broken != nullptr)
      cudaGraphDestroy(broken);
    throw;
  }
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  auto status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  CUDA_CHECK(status);
  return exec;
}

/// An event; timing disabled unless asked for.
class event {
public:
  explicit event(bool timing = false) {
    CUDA_CHECK(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault
                                                    : cudaEventDisableTiming));
  }
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  ~event() {
    cudaEventDestroy(e_);
  }
  cudaEvent_t get() const {
    return e_;
  }

private:
  cudaEvent_t e_ = nullptr;
};

} // namespace volt::cuda
