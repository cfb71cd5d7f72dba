// npy.h — NumPy .npy files (format 1.0/2.0, little-endian, C order): read into a CPU Tensor
// (float32 '<f4', float64 '<f8' converted to float32, int64 '<i8', uint8 '|u1') and write float32 /
// int64 / uint8 tensors. Writes go to a temporary name and are renamed at the end.
#pragma once
#include <string>

#include "engine/tensor.h"

namespace dfq {

Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const Tensor& t);

}  // namespace dfq
