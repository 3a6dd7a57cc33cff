// fqvit_classify: load an fqvit-export model with onnxruntime's C++ API, register the com.fqvit kernel library,
// run a preprocessed input tensor and print the top-5 classes of every image.
//
//   fqvit_classify MODEL.onnx LIBRARY.so INPUT.npy [--labels labels.txt] [--logits OUT.npy] [--threads N]
//
// INPUT.npy: float32, C order, shape [batch, 3, H, W], already preprocessed as the bundle's README says (write one
// with `fqvit-export preprocess MODEL.onnx IMAGE... -o INPUT.npy`). --logits writes the raw logits as float32 .npy.
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// The value of `key` in a .npy header dict ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 32, 32), }).
std::string header_value(const std::string& header, const std::string& key) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) throw std::runtime_error("npy header has no '" + key + "'");
  auto start = header.find(':', at) + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  const char open = header[start];
  const auto end = open == '(' ? header.find(')', start) + 1
                 : open == '\'' ? header.find('\'', start + 1) + 1
                                : header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

// Minimal .npy reader (format versions 1-3): little-endian float32, C order only.
Tensor read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  char magic[8];
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + " is not a .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint8_t b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    uint8_t b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  f.read(header.data(), header_len);
  if (header_value(header, "descr") != "'<f4'") throw std::runtime_error(path + ": dtype must be float32 ('<f4')");
  if (header_value(header, "fortran_order") != "False") throw std::runtime_error(path + ": must be C order");
  Tensor t;
  std::string dims = header_value(header, "shape");
  std::replace(dims.begin(), dims.end(), ',', ' ');
  dims = dims.substr(1, dims.size() - 2);
  std::istringstream ss(dims);
  for (int64_t d; ss >> d;) t.shape.push_back(d);
  const auto count = std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<int64_t>());
  t.data.resize(static_cast<size_t>(count));
  f.read(reinterpret_cast<char*>(t.data.data()), count * static_cast<std::streamsize>(sizeof(float)));
  if (!f) throw std::runtime_error(path + ": fewer values than its shape says");
  return t;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  for (auto d : shape) dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');  // pad so that data starts at a multiple of 64
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.put(static_cast<char>(len & 0xff));
  f.put(static_cast<char>(len >> 8));
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  const auto count = std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
  f.write(reinterpret_cast<const char*>(data), count * static_cast<std::streamsize>(sizeof(float)));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::vector<std::string> read_labels(const std::string& path) {
  std::vector<std::string> labels;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  for (std::string line; std::getline(f, line);) labels.push_back(line);
  return labels;
}

int usage() {
  std::cerr << "usage: fqvit_classify MODEL.onnx LIBRARY.so INPUT.npy [--labels labels.txt] [--logits OUT.npy] "
               "[--threads N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return usage();
  const std::string model = argv[1], library = argv[2], input = argv[3];
  std::string labels_path, logits_path;
  int threads = 0;
  for (int i = 4; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return usage();
    if (arg == "--labels") labels_path = argv[++i];
    else if (arg == "--logits") logits_path = argv[++i];
    else if (arg == "--threads") threads = std::stoi(argv[++i]);
    else return usage();
  }
  try {
    Tensor x = read_npy(input);
    if (x.shape.size() != 4) throw std::runtime_error(input + ": expected shape [batch, C, H, W]");
    const auto labels = labels_path.empty() ? std::vector<std::string>{} : read_labels(labels_path);

    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "fqvit_classify");
    Ort::SessionOptions so;
    so.RegisterCustomOpsLibrary(library.c_str());        // the com.fqvit kernels (else the ONNX function bodies run)
    so.AddConfigEntry("session.disable_quant_qdq", "1");  // keep quantized adds as exported (bit-exact results)
    if (threads > 0) so.SetIntraOpNumThreads(threads);
    Ort::Session session(env, model.c_str(), so);

    Ort::AllocatorWithDefaultOptions allocator;
    const auto in_name = session.GetInputNameAllocated(0, allocator);
    const auto out_name = session.GetOutputNameAllocated(0, allocator);
    const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    Ort::Value in = Ort::Value::CreateTensor<float>(memory, x.data.data(), x.data.size(), x.shape.data(),
                                                    x.shape.size());
    const char* in_names[] = {in_name.get()};
    const char* out_names[] = {out_name.get()};
    auto out = session.Run(Ort::RunOptions{nullptr}, in_names, &in, 1, out_names, 1);

    const auto shape = out[0].GetTensorTypeAndShapeInfo().GetShape();
    const float* logits = out[0].GetTensorData<float>();
    const int64_t batch = shape[0], classes = shape[1];
    if (!logits_path.empty()) write_npy(logits_path, logits, shape);
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = logits + b * classes;
      const float top = *std::max_element(row, row + classes);
      double sum = 0;
      for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(row[c] - top));
      std::vector<int64_t> order(static_cast<size_t>(classes));
      std::iota(order.begin(), order.end(), 0);
      const auto k = std::min<int64_t>(5, classes);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [row](int64_t a, int64_t c) { return row[a] > row[c] || (row[a] == row[c] && a < c); });
      std::printf("image %lld:", static_cast<long long>(b));
      for (int64_t i = 0; i < k; ++i) {
        const auto c = order[static_cast<size_t>(i)];
        const double p = std::exp(static_cast<double>(row[c] - top)) / sum;
        const std::string name = c < static_cast<int64_t>(labels.size()) ? " " + labels[c] : "";
        std::printf(" %lld%s (%.1f%%)", static_cast<long long>(c), name.c_str(), 100.0 * p);
      }
      std::printf("\n");
    }
  } catch (const std::exception& e) {  // Ort::Exception included
    std::cerr << "fqvit_classify: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
