import Foundation

/// The image a sandbox runs: Modal's `debian_slim` or a registry image, plus optional pip packages.
public struct ModalImage: Hashable, Sendable {
    /// The base layer.
    public enum Base: Hashable, Sendable {
        /// Modal's `debian_slim` image with a Python version (`3.11`, `3.12`).
        case debianSlim(python: String)
        /// A public registry image, e.g. `python:3.12-slim`.
        case registry(String)
    }

    public var base: Base
    /// Packages installed with pip in a second layer (`FROM base`, `RUN python -m pip install …`).
    public var pipPackages: [String]

    public init(base: Base = .debianSlim(python: "3.11"), pipPackages: [String] = []) {
        self.base = base
        self.pipPackages = pipPackages
    }

    /// `debian_slim` with Python 3.11 and optional pip packages.
    public static func debianSlim(python: String = "3.11", pipPackages: [String] = []) -> ModalImage {
        ModalImage(base: .debianSlim(python: python), pipPackages: pipPackages)
    }

    /// A registry image with optional pip packages.
    public static func registry(_ tag: String, pipPackages: [String] = []) -> ModalImage {
        ModalImage(base: .registry(tag), pipPackages: pipPackages)
    }

    /// The base layer's Dockerfile commands for an image builder version (as in `Fixtures/modal/traces/images.txt`).
    func baseCommands(builderVersion: String) -> [String] {
        switch base {
        case .registry(let tag):
            return ["FROM \(tag)"]
        case .debianSlim(let python):
            let from: String
            if builderVersion >= "2026" {
                from = "FROM python:\(python)-slim-trixie"
            } else {
                let full =
                    ["3.11": "3.11.12", "3.12": "3.12.10", "3.10": "3.10.17", "3.13": "3.13.3"][python] ?? python
                from = "FROM python:\(full)-slim-bookworm"
            }
            return [
                from,
                "RUN apt-get update",
                "RUN apt-get install -y gcc gfortran build-essential",
                "RUN pip install --upgrade pip wheel uv",
                "RUN echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections",
                "CMD [\"sleep\", \"172800\"]",
            ]
        }
    }

    /// The pip layer's commands, or `nil` without packages.
    var pipCommands: [String]? {
        guard !pipPackages.isEmpty else { return nil }
        let quoted = pipPackages.map { package in
            package.allSatisfy { $0.isLetter || $0.isNumber || "-_.=<>[],~!".contains($0) }
                ? package : "'" + package.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }
        return ["FROM base", "RUN python -m pip install " + quoted.joined(separator: " ")]
    }
}
