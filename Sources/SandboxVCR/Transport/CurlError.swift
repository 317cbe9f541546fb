internal import CCurl
import Foundation

/// A libcurl result code with the detail libcurl wrote into the transfer's error buffer.
///
/// See https://curl.se/libcurl/c/libcurl-errors.html for the codes and
/// https://curl.se/libcurl/c/CURLOPT_ERRORBUFFER.html for the detail text.
struct CurlError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The raw `CURLcode` value.
    let rawCode: UInt32
    /// The detail text of `CURLOPT_ERRORBUFFER`, when libcurl wrote one.
    let detail: String

    init(_ code: CURLcode, detail: String = "") {
        self.rawCode = code.rawValue
        self.detail = detail
    }

    var code: CURLcode { CURLcode(rawValue: rawCode) }

    /// libcurl's text for the code (`curl_easy_strerror`).
    var summary: String { String(cString: curl_easy_strerror(code)) }

    var description: String {
        detail.isEmpty || detail == summary ? "\(summary) (curl \(rawCode))" : "\(summary): \(detail) (curl \(rawCode))"
    }

    /// The execution error for this failure: connection failures, timeouts and resets get their own codes.
    func executionError(url: String) -> ExecutionError {
        let shownURL = HTTPClient.redactedURL(url)
        switch code {
        case CURLE_COULDNT_CONNECT:
            return ExecutionError(
                code: .connectionRefused,
                message: "could not connect to \(shownURL): \(self); is the server running and the URL right?",
                url: shownURL)
        case CURLE_OPERATION_TIMEDOUT:
            return ExecutionError(
                code: .timedOut,
                message: "no whole answer from \(shownURL) before the deadline: \(self); raise the request "
                    + "timeout if the server is just slow",
                url: shownURL)
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
            return ExecutionError(
                code: .connectionReset,
                message: "the connection to \(shownURL) broke before a whole answer arrived: \(self)",
                url: shownURL)
        default:
            return ExecutionError(
                code: .transport,
                message: "the request to \(shownURL) failed: \(self)",
                url: shownURL)
        }
    }
}
