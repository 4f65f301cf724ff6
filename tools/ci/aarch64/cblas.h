/* Stand-in for OpenBLAS's cblas.h in the aarch64 compile check (`make check-aarch64`): the
   build machine has only the x86_64 OpenBLAS headers, and shim.h's own code calls no CBLAS
   function (the Swift side does), so an empty header checks everything the shim defines. */
#pragma once
