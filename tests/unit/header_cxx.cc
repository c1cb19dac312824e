// SPDX-License-Identifier: Apache-2.0
// fshield.h compiles as C++ (-pedantic, C++11) and its functions link with
// C linkage: a C++ host can use the runtime as is.
#include <cerrno>
#include <cstdio>

#include "fshield.h"

int main()
{
	struct fshield_config cfg = {};
	struct fshield_volume *vol = nullptr;
	int err = fshield_volume_open(&cfg, &vol); // no fspf path: refused

	if (err != -EINVAL || vol) {
		std::printf("not ok 1 - fshield_volume_open from C++ gave %d\n", err);
		return 1;
	}
	std::printf("ok 1 - fshield.h from C++: %s\n1..1\n",
		    fshield_strerror(-EIO));
	return 0;
}
