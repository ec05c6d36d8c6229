// lilith-vm-attach OBJ PINDIR
// Loads a BPF object, pins every map as PINDIR/<map name> and attaches every program with
// libbpf's auto-attach (SEC name decides: lsm/..., cgroup programs excluded), pinning each
// link as PINDIR/link_<program name>. Attachments outlive this process until the pins are
// removed (rm -r PINDIR). bpftool 7.1 cannot attach LSM programs, hence this helper; the
// project's libbpf addon (bpf/addon) replaces it once ready. Prints one JSON line.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

static int fail(const char *step, const char *name, int err)
{
	if (err < 0)
		err = -err;
	printf("{\"ok\":false,\"step\":\"%s\",\"name\":\"%s\",\"errno\":%d,\"error\":\"%s\"}\n",
	       step, name ? name : "", err, strerror(err));
	return 1;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	// Keep libbpf's warnings and the verifier log on stderr; drop debug chatter.
	return level == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, ap);
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	char path[512], out[8192] = "";
	size_t n = 0;
	int err;

	if (argc != 3) {
		fprintf(stderr, "usage: %s OBJ PINDIR\n", argv[0]);
		return 2;
	}
	libbpf_set_print(quiet);
	if (mkdir(argv[2], 0700) && errno != EEXIST)
		return fail("mkdir", argv[2], errno);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return fail("open", argv[1], errno);
	err = bpf_object__load(obj);
	if (err)
		return fail("load", argv[1], err);
	bpf_object__for_each_map(map, obj) {
		// .bss/.rodata internal maps have dots in their names; pin only declared maps.
		if (strchr(bpf_map__name(map), '.'))
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[2], bpf_map__name(map));
		err = bpf_map__pin(map, path);
		if (err)
			return fail("pin map", bpf_map__name(map), err);
	}
	bpf_object__for_each_program(prog, obj) {
		struct bpf_link *link = bpf_program__attach(prog);

		if (!link)
			return fail("attach", bpf_program__name(prog), errno);
		snprintf(path, sizeof(path), "%s/link_%s", argv[2], bpf_program__name(prog));
		err = bpf_link__pin(link, path);
		if (err)
			return fail("pin link", bpf_program__name(prog), err);
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
		if (n < sizeof(out))
			n += snprintf(out + n, sizeof(out) - n, "%s{\"name\":\"%s\",\"id\":%u,\"link\":\"%s\"}",
				      n ? "," : "", bpf_program__name(prog), info.id, path);
	}
	printf("{\"ok\":true,\"programs\":[%s]}\n", out);
	return 0;
}
