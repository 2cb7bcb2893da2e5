import { InterceptingCall, type ClientOptions, type Interceptor, type Metadata } from "@grpc/grpc-js";
import { context, propagation, ROOT_CONTEXT, type Context, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";

/**
 * W3C trace context (traceparent, tracestate, baggage) in gRPC metadata. Propagation is
 * explicit: clients get `tracingClientOptions` (an interceptor that injects the caller's
 * active context), servers call `extractContext(call.metadata)`. No monkey-patching of
 * grpc-js, so it works whatever order modules load in.
 */
const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get: (carrier, key) => {
    const values = carrier.get(key);
    if (values.length === 0) return undefined;
    return values.map((value) => (typeof value === "string" ? value : value.toString("utf8")));
  },
};

const metadataSetter: TextMapSetter<Metadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** The caller's context from incoming metadata (ROOT when there is none). */
export function extractContext(metadata: Metadata | undefined): Context {
  if (!metadata) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
}

export function injectContext(ctx: Context, metadata: Metadata): void {
  propagation.inject(ctx, metadata, metadataSetter);
}

/** Client interceptor: the context active when the call is made travels in its metadata. */
export const traceContextInterceptor: Interceptor = (options, nextCall) => {
  const active = context.active();
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      injectContext(active, metadata);
      next(metadata, listener);
    },
  });
};

/** Options for generated clients: `new XClient(address, credentials, tracingClientOptions)`. */
export const tracingClientOptions: ClientOptions = { interceptors: [traceContextInterceptor] };
