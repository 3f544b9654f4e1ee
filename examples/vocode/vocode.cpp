// Vocodes a mel with an AOTInductor package of a vocoder_ext generator, from C++ alone:
//
//   vocode MODEL.pt2 MEL.npy OUT.wav
//
// MODEL.pt2: `python -m vocoder_ext export --checkpoint F --out MODEL.pt2 [--dynamic-frames]`.
// MEL.npy: float32 or float64, shape (num_mels, T) or (1, num_mels, T), C order (what `python -m vocoder_ext mel`
// writes). OUT.wav: 32-bit float mono at the sampling rate the package records.
//
// The package calls the vocoder_ext ops by name; this program links the op library (libvocoder_ext_ops), whose
// static initialisers register them with the dispatcher before the package is loaded.
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// The value of `key` in a .npy header dict ("{'descr': '<f4', 'fortran_order': False, 'shape': (80, 12), }").
std::string header_field(const std::string& header, const std::string& key) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) throw std::runtime_error("npy header has no '" + key + "': " + header);
  const auto colon = header.find(':', at);
  const auto end = header.find(key == "shape" ? ")" : ",", colon);
  return header.substr(colon + 1, end - colon - (key == "shape" ? 0 : 1));
}

at::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t len16 = 0;
    in.read(reinterpret_cast<char*>(&len16), 2);
    header_len = len16;
  } else {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  const std::string descr = header_field(header, "descr");
  if (header_field(header, "fortran_order").find("False") == std::string::npos)
    throw std::runtime_error(path + ": expected a C-order array, got fortran_order True");
  at::ScalarType dtype;
  if (descr.find("<f4") != std::string::npos) dtype = at::kFloat;
  else if (descr.find("<f8") != std::string::npos) dtype = at::kDouble;
  else throw std::runtime_error(path + ": expected float32 or float64 (<f4, <f8), got descr " + descr);
  std::vector<int64_t> shape;
  std::stringstream dims(header_field(header, "shape").substr(header_field(header, "shape").find('(') + 1));
  for (std::string d; std::getline(dims, d, ',');)
    if (d.find_first_of("0123456789") != std::string::npos) shape.push_back(std::stoll(d));
  if (shape.size() == 2) shape.insert(shape.begin(), 1);
  if (shape.size() != 3 || shape[0] != 1)
    throw std::runtime_error(path + ": expected shape (num_mels, T) or (1, num_mels, T)");
  at::Tensor mel = at::empty(shape, at::TensorOptions().dtype(dtype));
  in.read(static_cast<char*>(mel.data_ptr()), static_cast<std::streamsize>(mel.nbytes()));
  if (!in) throw std::runtime_error(path + ": shorter than its header says");
  return mel.to(at::kFloat);
}

void write_wav(const std::string& path, const at::Tensor& audio, uint32_t rate) {
  const at::Tensor samples = audio.to(at::kFloat).contiguous().view(-1);
  const uint32_t data_bytes = static_cast<uint32_t>(samples.numel() * 4);
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  out.write("RIFF", 4), u32(36 + data_bytes), out.write("WAVEfmt ", 8), u32(16);
  u16(3), u16(1), u32(rate), u32(rate * 4), u16(4), u16(32);  // IEEE float, mono, 32-bit
  out.write("data", 4), u32(data_bytes);
  out.write(static_cast<const char*>(samples.data_ptr()), data_bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt2 MEL.npy OUT.wav\n";
    return 2;
  }
  try {
    torch::inductor::AOTIModelPackageLoader loader(argv[1]);
    const auto metadata = loader.get_metadata();
    auto number = [&](const char* key) {
      const auto it = metadata.find(key);
      if (it == metadata.end())
        throw std::runtime_error(std::string(argv[1]) + ": no '" + key + "' in the package's metadata (write it "
                                 "with python -m vocoder_ext export)");
      return std::stoll(it->second);
    };
    const at::Tensor mel = read_npy(argv[2]);
    // The compiled model does not check its input's shape: a static package fed another length would read
    // out of bounds. So the shape is checked here, against what export recorded.
    const int64_t num_mels = number("num_mels"), min_frames = number("min_frames"), max_frames = number("max_frames");
    const int64_t frames = mel.size(2);
    if (mel.size(1) != num_mels || frames < min_frames || frames > max_frames) {
      std::ostringstream want;
      want << argv[2] << ": expected a mel of " << num_mels << " channels and "
           << (min_frames == max_frames ? std::to_string(min_frames) : std::to_string(min_frames) + ".." +
                                                                        std::to_string(max_frames))
           << " frames (what the package was exported for), got shape (" << mel.size(1) << ", " << frames << ")";
      throw std::runtime_error(want.str());
    }
    const uint32_t sampling_rate = static_cast<uint32_t>(number("sampling_rate"));
    const std::vector<at::Tensor> out = loader.run({mel});
    write_wav(argv[3], out.at(0), sampling_rate);
    std::cout << "wrote " << argv[3] << ": " << out.at(0).size(-1) << " samples at " << sampling_rate << " Hz\n";
  } catch (const c10::Error& e) {  // libtorch's: its what() carries a stack trace
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
