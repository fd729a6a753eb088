// The CloudWatch dashboard of a synthesized template, parsed: its widgets and their metric lines.

import assert from 'node:assert/strict';
import { type CfnTemplate, refTarget, resourcesOfType } from './synth.ts';

export interface Dashboard {
  name: string;
  /** The DashboardBody as one string, references written as `${LogicalId}`. */
  text: string;
  widgets: Widget[];
}

export interface Widget {
  type: string;
  properties: {
    title?: string;
    markdown?: string;
    metrics?: unknown[][];
    annotations?: { horizontal?: { value: number; label?: string }[] };
  };
}

/** One metric line of a graph: namespace, name, dimensions, and its rendering options. */
export interface MetricLine {
  widget: string;
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
  stat: string;
  period: number;
}

export function dashboard(json: CfnTemplate): Dashboard {
  const found = resourcesOfType(json, 'AWS::CloudWatch::Dashboard');
  assert.equal(found.length, 1, 'one dashboard');
  const props = found[0]![1].Properties;
  // The body is a Fn::Join of string pieces and references (region, API id, queue names,
  // function names, the rank index's name); a reference becomes `${LogicalId}` so the body parses
  // as JSON.
  const [separator, parts] = props.DashboardBody['Fn::Join'] as [string, unknown[]];
  const text = parts
    .map((part) => {
      if (typeof part === 'string') return part;
      const target = refTarget(part);
      if (target === undefined) throw new Error(`unexpected piece ${JSON.stringify(part)}`);
      return `\${${target}}`;
    })
    .join(separator);
  return { name: props.DashboardName, text, widgets: JSON.parse(text).widgets };
}

export function metricLines(d: Dashboard): MetricLine[] {
  return d.widgets.flatMap((w) =>
    (w.properties.metrics ?? []).map((m) => {
      const options = m.at(-1) as { stat: string; period: number };
      const [namespace, name, ...dims] = m.slice(0, -1) as string[];
      const dimensions: Record<string, string> = {};
      for (let i = 0; i < dims.length; i += 2) dimensions[dims[i]!] = dims[i + 1]!;
      return { widget: w.properties.title ?? '', namespace: namespace!, name: name!, dimensions, stat: options.stat, period: options.period };
    }),
  );
}

/** The lines showing `namespace`/`name`, optionally only those with dimension `key` = `value`. */
export function linesOf(lines: MetricLine[], namespace: string, name: string, key?: string, value?: string): MetricLine[] {
  return lines.filter((l) => l.namespace === namespace && l.name === name && (key === undefined || l.dimensions[key] === value));
}
