// The CUDA device checks of libfqvit_ops_cuda.so (fqvit_ops/common.h): whether this GPU has a kernel image, and
// clear text for a CUDA error. FQVIT_CUDA_ARCHITECTURES is CMake's CMAKE_CUDA_ARCHITECTURES, comma-separated
// (CMakeLists.txt).
#include <cuda_runtime.h>

#include <string>

#include "fqvit_ops/common.h"

#ifndef FQVIT_CUDA_ARCHITECTURES
#define FQVIT_CUDA_ARCHITECTURES "unknown"
#endif

namespace fqvit {
namespace {

// "75-real,80-real,90-virtual" -> "sm_75,sm_80 (cubins) + compute_90 (PTX, JIT-compiled for newer GPUs)".
std::string describe_architectures() {
  const std::string list = FQVIT_CUDA_ARCHITECTURES;
  std::string real, virt;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    const size_t dash = item.find('-');
    const std::string num = item.substr(0, dash);
    const std::string kind = dash == std::string::npos ? "" : item.substr(dash + 1);
    if (kind != "virtual") real += (real.empty() ? "sm_" : ",sm_") + num;
    if (kind != "real") virt += (virt.empty() ? "compute_" : ",compute_") + num;
  }
  std::string s = real.empty() ? "no cubins" : real + " (cubins)";
  if (!virt.empty()) s += " + " + virt + " (PTX, JIT-compiled by the driver for newer GPUs)";
  return s;
}

std::string device_text() {
  int dev = -1;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return "sm_unknown";
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();
    return "sm_unknown, device " + std::to_string(dev);
  }
  return "sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " + prop.name + ", device " +
         std::to_string(dev);
}

std::string no_image_text() {
  return "no kernel image for this GPU (" + device_text() + "); the library was built for " +
         describe_architectures() + ": rebuild custom_ops with -DCMAKE_CUDA_ARCHITECTURES=<this GPU's sm, e.g. 120> "
         "(or a lower compute_XX-virtual PTX), e.g. CMAKE_ARGS=-DCMAKE_CUDA_ARCHITECTURES=native pip install .";
}

}  // namespace

const char* cuda_built_architectures() { return FQVIT_CUDA_ARCHITECTURES; }

std::string cuda_error_text(int rc) {
  const cudaError_t err = static_cast<cudaError_t>(rc);
  if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction) return no_image_text();
  return std::string("CUDA error ") + cudaGetErrorName(err) + " (" + std::to_string(rc) + "): " +
         cudaGetErrorString(err);
}

std::string cuda_kernel_image_check(const void* kernel) {
  cudaFuncAttributes attr{};
  const cudaError_t err = cudaFuncGetAttributes(&attr, kernel);
  if (err == cudaSuccess) return {};
  cudaGetLastError();  // clear the sticky-free error state of this thread
  if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction) return no_image_text();
  return "cannot query the CUDA kernel: " + cuda_error_text(static_cast<int>(err));
}

}  // namespace fqvit
