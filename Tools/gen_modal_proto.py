#!/usr/bin/env python3
"""Writes a pruned FileDescriptorSet of Modal's API from an unpacked `modal` wheel.

Called by Tools/gen-modal-proto; not meant to be run by hand. It loads the serialized
FileDescriptorProtos embedded in the wheel's `modal_proto/api_pb2.py` and
`modal_proto/task_command_router_pb2.py`, keeps only the RPCs the Swift Modal backend uses
(`NEEDED_METHODS`) plus `EXTRA_TYPES`, computes the transitive closure of the message and enum
types those RPCs reference (whole top-level types are kept, nested types included), drops every
other type and method, and writes:

- the FileDescriptorSet (with the well-known-type files it still imports) for `protoc --descriptor_set_in`,
- INCLUDED.txt: the kept methods and types, one a line,
- ModalRPC.swift: a table of the kept methods' full gRPC paths with their request/response Swift types.

Output is deterministic: input order is preserved and serialization is deterministic.
"""

import argparse
import importlib
import sys

NEEDED_METHODS = {
    "modal.client.ModalClient": [
        "AppGetOrCreate",
        "EnvironmentGetOrCreate",
        "ImageGetOrCreate",
        "ImageJoinStreaming",
        "AuthTokenGet",
        "SandboxCreateV2",
        "SandboxGetTaskIdV2",
        "SandboxGetCommandRouterAccess",
        "SandboxTerminateV2",
        "SandboxWaitV2",
        "SandboxCreate",
        "SandboxGetTaskId",
        "TaskGetCommandRouterAccess",
        "SandboxTerminate",
        "SandboxWait",
    ],
    "modal.task_command_router.TaskCommandRouter": [
        "TaskExecStart",
        "TaskExecStdinWrite",
        "TaskExecStdioRead",
        "TaskExecWait",
        "TaskExecPoll",
    ],
}

# Types needed outside any request/response: the grpc-status-details-bin payload and its retry detail.
EXTRA_TYPES = [".modal.client.RPCStatus", ".modal.client.RPCRetryPolicy"]

MODAL_FILES = ["modal_proto/api.proto", "modal_proto/task_command_router.proto"]


def load_files(wheel_dir):
    """Imports the wheel's generated modules (the wheel first on sys.path) and returns their FileDescriptorProtos."""
    from google.protobuf import descriptor_pb2

    sys.path.insert(0, wheel_dir)
    api = importlib.import_module("modal_proto.api_pb2")
    router = importlib.import_module("modal_proto.task_command_router_pb2")
    if not api.__file__.startswith(wheel_dir):
        raise SystemExit(f"gen_modal_proto: loaded {api.__file__}, expected the wheel in {wheel_dir}")
    files = {}
    for module in (api, router):
        proto = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        files[proto.name] = proto
    return files


def well_known_file(name):
    """The FileDescriptorProto of a google/protobuf/*.proto file from the protobuf runtime."""
    from google.protobuf import descriptor_pb2

    module_name = "google.protobuf." + name.split("/")[-1].replace(".proto", "_pb2")
    module = importlib.import_module(module_name)
    return descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)


def index_types(files):
    """Maps each top-level type's full name ('.pkg.Name') to (file name, kind, proto) and nested names to their top-level type."""
    top = {}
    owner = {}

    def walk_nested(message, prefix, top_name):
        for nested in message.nested_type:
            full = f"{prefix}.{nested.name}"
            owner[full] = top_name
            walk_nested(nested, full, top_name)
        for enum in message.enum_type:
            owner[f"{prefix}.{enum.name}"] = top_name

    for name, proto in files.items():
        for message in proto.message_type:
            full = f".{proto.package}.{message.name}"
            top[full] = (name, "message", message)
            owner[full] = full
            walk_nested(message, full, full)
        for enum in proto.enum_type:
            full = f".{proto.package}.{enum.name}"
            top[full] = (name, "enum", enum)
            owner[full] = full
    return top, owner


def referenced_types(message):
    """Every type name referenced by a message's fields, its nested messages' fields included."""
    names = [field.type_name for field in message.field if field.type_name]
    for nested in message.nested_type:
        names.extend(referenced_types(nested))
    return names


def closure(roots, top, owner):
    """Top-level type names reachable from roots through field types."""
    keep = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name not in owner:
            continue  # a well-known type (google.protobuf.*): resolved from its own file
        top_name = owner[name]
        if top_name in keep:
            continue
        keep.add(top_name)
        _, kind, proto = top[top_name]
        if kind == "message":
            stack.extend(referenced_types(proto))
    return keep


def external_dependencies(proto):
    """Type names a pruned file references that live outside the modal files (well-known types)."""
    names = set()
    for message in proto.message_type:
        names.update(n for n in referenced_types(message) if n.startswith(".google.protobuf."))
    for service in proto.service:
        for method in service.method:
            names.update(n for n in (method.input_type, method.output_type) if n.startswith(".google.protobuf."))
    return names


def schema_paths(files):
    """The full path of every method of every service in the unpruned schema, in schema order."""
    return [
        f"/{proto.package}.{service.name}/{method.name}"
        for name in MODAL_FILES
        for proto in [files[name]]
        for service in proto.service
        for method in service.method
    ]


def prune(files):
    """Prunes files in place to the needed methods and the closure of their types; returns (kept types, kept methods)."""
    top, owner = index_types(files)
    roots = list(EXTRA_TYPES)
    methods = []
    for proto in files.values():
        for service in proto.service:
            full_service = f"{proto.package}.{service.name}"
            wanted = NEEDED_METHODS.get(full_service, [])
            present = [m.name for m in service.method]
            missing = [m for m in wanted if m not in present]
            if missing:
                raise SystemExit(f"gen_modal_proto: {full_service} lacks {missing}")
            kept = [m for m in service.method if m.name in wanted]
            del service.method[:]
            service.method.extend(kept)
            for method in kept:
                roots.extend([method.input_type, method.output_type])
                methods.append((proto.package, service.name, method))
        kept_services = [s for s in proto.service if len(s.method) > 0]
        del proto.service[:]
        proto.service.extend(kept_services)

    keep = closure(roots, top, owner)
    for name, proto in files.items():
        messages = [m for m in proto.message_type if f".{proto.package}.{m.name}" in keep]
        enums = [e for e in proto.enum_type if f".{proto.package}.{e.name}" in keep]
        del proto.message_type[:]
        proto.message_type.extend(messages)
        del proto.enum_type[:]
        proto.enum_type.extend(enums)
        proto.ClearField("source_code_info")

    # Keep only the imports still used, so protoc has nothing to warn about.
    packages = {f".{p.package}.": n for n, p in files.items()}
    for name, proto in files.items():
        used = set()
        for wkt in external_dependencies(proto):
            used.add("google/protobuf/" + wkt_file(wkt))
        for message in proto.message_type:
            for ref in referenced_types(message):
                for prefix, file_name in packages.items():
                    if ref.startswith(prefix) and file_name != name:
                        used.add(file_name)
        deps = [d for d in proto.dependency if d in used]
        if proto.public_dependency or proto.weak_dependency:
            raise SystemExit(f"gen_modal_proto: {name} has public/weak imports; not supported")
        del proto.dependency[:]
        proto.dependency.extend(deps)
    return keep, methods


def wkt_file(type_name):
    """The file name of a well-known type (google.protobuf.Empty -> empty.proto)."""
    from google.protobuf import descriptor_pool

    descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name.lstrip("."))
    return descriptor.file.name.split("/")[-1]


def swift_type(full_name):
    """The Swift name swift-protobuf gives a top-level type: '.modal.client.Foo' -> 'Modal_Client_Foo'."""
    parts = full_name.lstrip(".").split(".")
    package, name = parts[:-1], parts[-1]
    if package == ["google", "protobuf"]:
        return f"SwiftProtobuf.Google_Protobuf_{name}"

    def camel(word):
        return "".join(piece[:1].upper() + piece[1:] for piece in word.split("_"))

    return "_".join(camel(p) for p in package) + "_" + name


def lower_first(name):
    """AppGetOrCreate -> appGetOrCreate."""
    return name[:1].lower() + name[1:]


def write_swift_table(output_path, methods, files, every_path):
    """Writes ModalRPC.swift: one typed ModalRPCMethod per kept method, grouped by service, and every message type."""
    lines = [
        "// Generated by Tools/gen-modal-proto from modal==1.6.4. DO NOT EDIT.",
        "",
        "public import SwiftProtobuf",
        "",
        "/// The gRPC methods of Modal's API that this package uses, with their full paths and message types.",
        "public enum ModalRPC {",
    ]
    services = []
    for package, service, method in methods:
        key = (package, service)
        if key not in services:
            services.append(key)
    all_paths = []
    for package, service in services:
        lines.append(f"    /// Methods of `{package}.{service}`.")
        lines.append(f"    public enum {service} {{")
        for pkg, svc, method in methods:
            if (pkg, svc) != (package, service):
                continue
            method_path = f"/{package}.{service}/{method.name}"
            all_paths.append(method_path)
            request = swift_type(method.input_type)
            response = swift_type(method.output_type)
            streaming = "true" if method.server_streaming else "false"
            lines.append(f"        /// `{method_path}`.")
            lines.append(
                f"        public static let {lower_first(method.name)} = ModalRPCMethod<{request}, {response}>("
            )
            lines.append(f'            path: "{method_path}", isServerStreaming: {streaming}')
            lines.append("        )")
        lines.append("    }")
        lines.append("")
    lines.append("    /// The full path of every method above, in schema order.")
    lines.append("    public static let allPaths: [String] = [")
    for path in all_paths:
        lines.append(f'        "{path}",')
    lines.append("    ]")
    lines.append("")
    lines.append("    /// The full path of every method of Modal's two services in the schema, used or not, in schema order.")
    lines.append("    public static let schemaPaths: [String] = [")
    for path in every_path:
        lines.append(f'        "{path}",')
    lines.append("    ]")
    lines.append("")
    lines.append("    /// Every top-level message type kept from the schema (see INCLUDED.txt), in schema order.")
    lines.append("    public static let messageTypes: [any SwiftProtobuf.Message.Type] = [")
    for name in MODAL_FILES:
        proto = files[name]
        for message in proto.message_type:
            lines.append(f"        {swift_type(f'.{proto.package}.{message.name}')}.self,")
    lines.append("    ]")
    lines.append("}")
    with open(output_path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def write_included(path, files, methods):
    """Writes INCLUDED.txt: the kept methods and top-level types, one a line."""
    lines = ["# Generated by Tools/gen-modal-proto from modal==1.6.4. DO NOT EDIT.", "# Methods"]
    for package, service, method in methods:
        suffix = " (server streaming)" if method.server_streaming else ""
        lines.append(f"/{package}.{service}/{method.name}{suffix}")
    for name in MODAL_FILES:
        proto = files[name]
        lines.append(f"# {name}: {len(proto.message_type)} messages, {len(proto.enum_type)} enums")
        lines.extend(f"message {proto.package}.{m.name}" for m in proto.message_type)
        lines.extend(f"enum {proto.package}.{e.name}" for e in proto.enum_type)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel-dir", required=True, help="folder holding the unpacked wheel")
    parser.add_argument("--descriptor-set", required=True, help="FileDescriptorSet to write")
    parser.add_argument("--included", required=True, help="INCLUDED.txt to write")
    parser.add_argument("--swift-table", required=True, help="ModalRPC.swift to write")
    args = parser.parse_args()

    from google.protobuf import descriptor_pb2

    files = load_files(args.wheel_dir)
    every_path = schema_paths(files)
    keep, methods = prune(files)

    wkt_names = set()
    for proto in files.values():
        wkt_names.update(d for d in proto.dependency if d.startswith("google/protobuf/"))
    output = descriptor_pb2.FileDescriptorSet()
    for name in sorted(wkt_names):
        output.file.append(well_known_file(name))
    for name in MODAL_FILES:
        output.file.append(files[name])
    with open(args.descriptor_set, "wb") as handle:
        handle.write(output.SerializeToString(deterministic=True))

    write_included(args.included, files, methods)
    write_swift_table(args.swift_table, methods, files, every_path)
    counts = {n: (len(files[n].message_type), len(files[n].enum_type)) for n in MODAL_FILES}
    print(f"gen_modal_proto: kept {len(methods)} methods; messages/enums per file: {counts}")


if __name__ == "__main__":
    main()
