// The common base of extension values (ipaddr, decimal, datetime, duration): one
// `instanceof` tells them apart from records, which are plain objects.
export abstract class ExtValue {
  abstract readonly typeName: string;
  abstract equals(o: ExtValue): boolean;
}
