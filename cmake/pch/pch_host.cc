// Host of the precompiled LibTorch headers for libraries (cmake/TorchPch.cmake); compiles to nothing.
