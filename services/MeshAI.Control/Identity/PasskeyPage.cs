using Microsoft.AspNetCore.Http;

namespace MeshAI.Control.Identity;

/// <summary>
/// GET /auth/passkey: a minimal page that runs the passkey ceremonies in the browser. It calls the IdentityService RPCs
/// themselves over gRPC-Web (same origin, so the WebAuthn origin and RP id match the server) and exposes
/// <c>window.meshaiPasskey.register(token, name)</c> / <c>login(email)</c> for the buttons and for the browser test.
/// The page holds no secret: registration needs the session token typed (or passed) in.
/// </summary>
public static class PasskeyPage
{
    /// <summary>The route.</summary>
    public const string Path = "/auth/passkey";

    /// <summary>Serves the page.</summary>
    public static IResult Handle() => Results.Content(Html, "text/html; charset=utf-8", System.Text.Encoding.UTF8);

    private const string Html = """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>MeshAI — passkeys</title></head>
        <body>
        <h1>Passkeys</h1>
        <p><label>Session token (to add a passkey) <input id="token" type="password"></label>
           <label>Name <input id="name" value="this device"></label> <button id="register">Add a passkey</button></p>
        <p><label>Email (optional) <input id="email" type="email"></label> <button id="login">Sign in with a passkey</button></p>
        <pre id="out"></pre>
        <script>
        "use strict";
        (() => {
          const enc = new TextEncoder(), dec = new TextDecoder();
          const varint = (out, n) => { while (n > 127) { out.push((n & 127) | 128); n = Math.floor(n / 128); } out.push(n); };
          // Request messages here are all string fields: {fieldNumber: value}.
          const encode = fields => {
            const out = [];
            for (const [no, value] of Object.entries(fields)) {
              if (!value) continue;
              const bytes = enc.encode(value);
              varint(out, (Number(no) << 3) | 2); varint(out, bytes.length); for (const b of bytes) out.push(b);
            }
            return new Uint8Array(out);
          };
          // Length-delimited fields by number; other wire types are skipped.
          const decode = bytes => {
            const fields = {}; let i = 0;
            const read = () => { let n = 0, mul = 1, b; do { b = bytes[i++]; n += (b & 127) * mul; mul *= 128; } while (b & 128); return n; };
            while (i < bytes.length) {
              const key = read(), type = key & 7, no = Math.floor(key / 8);
              if (type === 2) { const len = read(); fields[no] = bytes.subarray(i, i + len); i += len; }
              else if (type === 0) read(); else if (type === 1) i += 8; else if (type === 5) i += 4;
              else throw new Error("unexpected wire type " + type);
            }
            return fields;
          };
          const text = (fields, no) => fields[no] ? dec.decode(fields[no]) : "";
          const call = async (method, fields, token) => {
            const body = encode(fields), frame = new Uint8Array(5 + body.length);
            new DataView(frame.buffer).setUint32(1, body.length); frame.set(body, 5);
            const headers = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
            if (token) headers.authorization = "Bearer " + token;
            const res = await fetch("/meshai.identity.v1.IdentityService/" + method, { method: "POST", headers, body: frame });
            const buf = new Uint8Array(await res.arrayBuffer());
            let message = new Uint8Array(), trailers = "";
            for (let i = 0; i + 5 <= buf.length;) {
              const flag = buf[i], len = new DataView(buf.buffer, buf.byteOffset + i + 1, 4).getUint32(0);
              const data = buf.subarray(i + 5, i + 5 + len); i += 5 + len;
              if (flag & 0x80) trailers += dec.decode(data); else message = data;
            }
            const status = res.headers.get("grpc-status") ?? (/grpc-status:\s*(\d+)/i.exec(trailers) || [])[1] ?? "0";
            const detail = res.headers.get("grpc-message") ?? (/grpc-message:\s*([^\r\n]*)/i.exec(trailers) || [])[1] ?? "";
            if (status !== "0") throw new Error(method + " failed: grpc-status " + status + " " + decodeURIComponent(detail));
            return decode(message);
          };
          // WebIDL turns a JSON null into the string "null" for enum members; drop nulls before parsing.
          const clean = value => Array.isArray(value) ? value.map(clean)
            : value && typeof value === "object" ? Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, clean(v)]))
            : value;
          const register = async (token, name) => {
            const begin = await call("BeginPasskeyRegistration", { 1: name }, token);
            const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(clean(JSON.parse(text(begin, 1))));
            const credential = await navigator.credentials.create({ publicKey });
            const finish = await call("FinishPasskeyRegistration", { 1: text(begin, 2), 2: JSON.stringify(credential.toJSON()) }, token);
            const passkey = decode(finish[1] || new Uint8Array());
            return { passkeyId: text(passkey, 1), userId: text(passkey, 2), name: text(passkey, 3) };
          };
          const login = async email => {
            const begin = await call("BeginPasskeyLogin", { 1: email || "" });
            const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(clean(JSON.parse(text(begin, 1))));
            const credential = await navigator.credentials.get({ publicKey });
            const ceremonyId = text(begin, 2), assertionJson = JSON.stringify(credential.toJSON());
            const finish = await call("FinishPasskeyLogin", { 1: ceremonyId, 2: assertionJson, 3: "browser" });
            const user = decode(finish[1] || new Uint8Array());
            return { userId: text(user, 1), email: text(user, 2), sessionToken: text(finish, 2), ceremonyId, assertionJson };
          };
          window.meshaiPasskey = { register, login };
          const out = document.getElementById("out");
          const show = promise => promise.then(r => { out.textContent = JSON.stringify({ ...r, sessionToken: r.sessionToken ? "(received)" : undefined, assertionJson: undefined }, null, 2); },
                                               e => { out.textContent = String(e); });
          document.getElementById("register").onclick = () => show(register(document.getElementById("token").value, document.getElementById("name").value));
          document.getElementById("login").onclick = () => show(login(document.getElementById("email").value));
        })();
        </script>
        </body></html>
        """;
}
